#!/usr/bin/python
# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: build_context
short_description: Stage a Docker build context idempotently and return a content hash of every build input
version_added: 0.1.0
description:
  - Makes the directory O(dest) hold exactly the files given by O(sources) (directories or single files, with exclude
    patterns) and O(files) (generated content), and nothing else.
  - Only files whose content, size, modification time or mode differ are rewritten; copies keep the source's modification
    time; files and directories that are no longer wanted are removed. A second run with the same inputs changes nothing.
  - Returns RV(content_hash), a SHA-256 over every staged path, its permission bits and its content (plus O(hash_extra)), so
    that an image tag derived from it changes exactly when a build input changes. Touching a file without changing its
    content does not change the hash.
  - File digests are cached by path, size, modification time and inode in O(cache_file), so an unchanged tree of several GB
    (a wheelhouse with CUDA torch) is re-checked with C(stat) calls only.
author:
  - ktrdr.ops maintainers (@ktrdr-ops)
extends_documentation_fragment:
  - ktrdr.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports what would be added, updated and removed, and the content hash the staged directory would have.
  diff_mode:
    support: full
    details:
      - The diff lists the added, updated and removed paths (at most 50 of each), one per line, not file contents.
  idempotent:
    support: full
options:
  dest:
    description:
      - The staging directory. Created when missing.
      - Everything in it that is not a wanted path is removed, so point it at a directory used for nothing else.
      - Exactly one of O(dest) and O(contexts) is required.
    type: path
  sources: &sources
    description:
      - Files and directory trees to copy into O(dest).
      - When two entries yield the same path, the later one wins. O(files) win over O(sources).
    type: list
    elements: dict
    default: []
    suboptions:
      src:
        description:
          - A directory (its contents are copied, recursively) or a single file.
        type: path
        required: true
      dest:
        description:
          - Relative path inside O(dest) where the contents of a directory O(sources[].src) go (V('') for the top), or the
            relative file name for a file O(sources[].src).
          - Defaults to the top of O(dest) for a directory and to the file's own name for a file.
        type: str
      include:
        description:
          - When set, only paths matching one of these patterns (relative to O(sources[].src), for example C(ktrdr),
            C(alembic.ini), C(config/*.yaml)) are copied; a matching directory brings its whole tree. Patterns that match
            nothing are not an error, so a list of optional top-level paths can be given.
          - O(sources[].exclude) and O(exclude) still apply inside included directories.
        type: list
        elements: str
      exclude:
        description:
          - Patterns of paths to leave out, in addition to the top-level O(exclude).
          - A pattern without C(/) matches a file or directory name at any depth (C(__pycache__), C(*.pyc)).
            A pattern with C(/) is matched against the path relative to O(sources[].src) (C(docs/*), C(/tests)).
            A trailing C(/) restricts a pattern to directories. C(*) does not stop at C(/).
        type: list
        elements: str
        default: []
      link:
        description:
          - Hard-link files instead of copying them when O(dest) is on the same file system, which saves the space and
            time of copying large files (wheels). Falls back to a copy across file systems.
          - The staged file then shares its inode with the source; do not edit staged files in place.
        type: bool
        default: false
      optional:
        description:
          - Skip this entry silently when O(sources[].src) does not exist, instead of failing.
        type: bool
        default: false
  files: &files
    description:
      - Files to create from text, for example generated requirement lists.
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description:
          - Relative path of the file inside O(dest).
        type: str
        required: true
      content:
        description:
          - The file's content.
        type: str
        required: true
      mode:
        description:
          - Permission bits of the file, as an octal string.
        type: str
        default: '0644'
  exclude:
    description:
      - Patterns left out of every directory in O(sources); see O(sources[].exclude) for the syntax.
    type: list
    elements: str
    default: ['.git', '__pycache__', '*.py[co]', '.pytest_cache', '.mypy_cache', '.ruff_cache', '.venv', 'node_modules', '.DS_Store']
  hash_extra: &hash_extra
    description:
      - Further build inputs that are not files (build arguments, the ID of the base image, a target name). They are
        serialised as sorted JSON and folded into RV(content_hash); nothing is written for them.
    type: raw
    default: {}
  cache_file: &cache_file
    description:
      - Where the digest cache is kept. It lies outside O(dest), so it never becomes part of the build context.
      - Defaults to O(dest) with C(.hashcache.json) appended.
    type: path
  state: &state
    description:
      - V(present) stages the context. V(absent) removes O(dest) and its cache file.
    type: str
    choices: [present, absent]
    default: present
  contexts:
    description:
      - Stage several contexts in one call (one module round trip instead of one per context). Each element takes the
        options O(dest) (required), O(sources), O(files), O(exclude) (defaults to the top-level O(exclude)),
        O(hash_extra), O(cache_file) and O(state), with the same meaning as at the top level.
      - The result then has RV(contexts), one result per element, in order.
    type: list
    elements: dict
    suboptions:
      dest:
        description:
          - The staging directory of this context (see the top-level O(dest)).
        type: path
        required: true
      sources: *sources
      files: *files
      exclude:
        description:
          - Patterns left out of every directory in this context's sources; defaults to the top-level O(exclude).
        type: list
        elements: str
      hash_extra: *hash_extra
      cache_file: *cache_file
      state: *state
notes:
  - Symbolic links inside a source tree are staged as links (not followed) and hashed by their target text.
  - The directory tree is part of the hash too, so adding an empty directory changes it.
seealso:
  - module: community.docker.docker_image_build
  - module: community.docker.docker_image
"""

EXAMPLES = r"""
- name: Stage the backend's build context from the source tree, the wheelhouse and generated requirements
  ktrdr.ops.build_context:
    dest: "{{ ktrdr_build_dir }}/context/backend"
    sources:
      - src: "{{ playbook_dir }}/../deploy/docker/Dockerfile.backend"
        dest: Dockerfile
      - src: "{{ ktrdr_source_dir }}"
        dest: src
        include: [ktrdr, strategies, alembic, alembic.ini, pyproject.toml]
      - src: "{{ ktrdr_build_dir }}/wheelhouse/backend-0123456789ab"
        dest: wheels
        link: true
    files:
      - dest: requirements/ktrdr-image.txt
        content: "-r backend.txt\n"
    hash_extra:
      base_image_id: "{{ base_info.images[0].Id }}"
  register: context

- name: Build the image tagged with the content hash; an existing tag means nothing changed
  community.docker.docker_image:
    name: ktrdr-backend
    tag: "{{ context.content_hash[:12] }}"
    source: build
    build:
      path: "{{ context.dest }}"

- name: Stage two contexts in one call
  ktrdr.ops.build_context:
    contexts:
      - dest: "{{ ktrdr_build_dir }}/context/a"
        sources: [{src: /srv/a}]
      - dest: "{{ ktrdr_build_dir }}/context/b"
        sources: [{src: /srv/b}]
  register: staged

- name: Show their tags
  ansible.builtin.debug:
    msg: "{{ staged.contexts | map(attribute='content_hash_short') | list }}"

- name: Remove a staging directory that is no longer used
  ktrdr.ops.build_context:
    dest: "{{ ktrdr_build_dir }}/context/old"
    state: absent
"""

RETURN = r"""
dest:
  description: The staging directory.
  returned: without O(contexts)
  type: str
  sample: /work/main/build/context/backend
content_hash:
  description:
    - SHA-256 (hex) over the staged paths, their permission bits and contents, and O(hash_extra).
    - With O(state=absent), an empty string.
  returned: without O(contexts)
  type: str
  sample: 3f1c0a9e7b2d4c5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6
content_hash_short:
  description: The first 12 hex digits of RV(content_hash), the form used as an image tag.
  returned: without O(contexts)
  type: str
  sample: 3f1c0a9e7b2d
file_count:
  description: Number of files (and links) in the staged context.
  returned: without O(contexts)
  type: int
  sample: 214
total_bytes:
  description: Total size of the staged files in bytes.
  returned: without O(contexts)
  type: int
  sample: 204857344
added:
  description: Paths (relative to O(dest)) that were or would be created. At most 200 are listed; see RV(summary) for counts.
  returned: without O(contexts)
  type: list
  elements: str
  sample: [src/ktrdr/api/main.py]
updated:
  description: Paths whose content or mode was or would be rewritten. At most 200 are listed.
  returned: without O(contexts)
  type: list
  elements: str
  sample: [requirements/ktrdr-image.txt]
removed:
  description: Paths that were or would be removed because no source yields them any more. At most 200 are listed.
  returned: without O(contexts)
  type: list
  elements: str
  sample: [src/ktrdr/old_module.py]
summary:
  description: Counts of added, updated, removed and unchanged paths.
  returned: without O(contexts)
  type: dict
  sample: {added: 0, updated: 1, removed: 0, unchanged: 213}
contexts:
  description:
    - With O(contexts), one result per context, in order, each with the keys RV(dest), RV(content_hash),
      RV(content_hash_short), RV(file_count), RV(total_bytes), RV(added), RV(updated), RV(removed), RV(summary) and
      C(changed). The top-level keys other than C(changed) are then absent.
  returned: when O(contexts) is used
  type: list
  elements: dict
  sample: [{dest: /work/main/build/context/backend, content_hash_short: 3f1c0a9e7b2d, changed: false}]
"""

import errno
import fnmatch
import hashlib
import json
import os
import shutil
import stat
import tempfile
import traceback

from ansible.module_utils.basic import AnsibleModule

_LIST_LIMIT = 200
_DIFF_LIMIT = 50
_CHUNK = 1024 * 1024


class _Excluder:
    """gitignore-like matching: a name pattern matches at any depth, a pattern with '/' matches the relative path."""

    def __init__(self, patterns):
        self.name_patterns = []
        self.path_patterns = []
        for raw in patterns:
            pattern = raw.strip()
            if not pattern:
                continue
            dir_only = pattern.endswith("/")
            pattern = pattern.rstrip("/")
            if "/" in pattern:
                self.path_patterns.append((pattern.lstrip("/"), dir_only))
            else:
                self.name_patterns.append((pattern, dir_only))

    def excluded(self, relpath, is_dir):
        name = relpath.rsplit("/", 1)[-1]
        for pattern, dir_only in self.name_patterns:
            if (is_dir or not dir_only) and fnmatch.fnmatchcase(name, pattern):
                return True
        for pattern, dir_only in self.path_patterns:
            if (is_dir or not dir_only) and fnmatch.fnmatchcase(relpath, pattern):
                return True
        return False


class _Includer:
    """Path-prefix matching: a path is included when it or one of its parent directories matches a pattern."""

    def __init__(self, patterns):
        self.patterns = [p.strip().strip("/").split("/") for p in patterns if p.strip().strip("/")]

    def included(self, relpath):
        parts = relpath.split("/")
        for pattern in self.patterns:
            if len(pattern) <= len(parts) and all(
                fnmatch.fnmatchcase(part, pat) for part, pat in zip(parts, pattern)
            ):
                return True
        return False

    def may_contain(self, reldir):
        """True when something below the directory reldir could match a pattern."""
        parts = reldir.split("/")
        for pattern in self.patterns:
            if len(pattern) > len(parts) and all(fnmatch.fnmatchcase(part, pat) for part, pat in zip(parts, pattern)):
                return True
        return False


class _Entry:
    """One wanted path in the context."""

    __slots__ = ("kind", "src", "content", "mode", "link", "target")

    def __init__(self, kind, src=None, content=None, mode=None, link=False, target=None):
        self.kind = kind  # 'file' (copied), 'data' (generated), 'symlink', 'dir'
        self.src = src
        self.content = content
        self.mode = mode
        self.link = link
        self.target = target


class ContextStager:
    def __init__(self, module, params):
        self.module = module
        self.params = params
        p = params
        self.dest = os.path.abspath(p["dest"])
        self.cache_file = p["cache_file"] or self.dest.rstrip("/") + ".hashcache.json"
        self.check_mode = module.check_mode
        self.wanted = {}
        self.cache = {}
        self.cache_dirty = False
        self.added, self.updated, self.removed = [], [], []
        self._removed_set = set()
        self.unchanged = 0

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=msg, dest=self.dest, **kwargs)

    # ---------------------------------------------------------------- collecting what is wanted
    def _add(self, relpath, entry):
        relpath = os.path.normpath(relpath).replace(os.sep, "/")
        if relpath in (".", "") or relpath.startswith("../") or relpath == ".." or os.path.isabs(relpath):
            self.fail("Destination path %r is not a relative path inside dest" % relpath)
        # Every parent directory is wanted too.
        parts = relpath.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            existing = self.wanted.get(parent)
            if existing is not None and existing.kind != "dir":
                self.fail("%r is staged as a file but %r needs it to be a directory" % (parent, relpath))
            self.wanted.setdefault(parent, _Entry("dir"))
        existing = self.wanted.get(relpath)
        if existing is not None and existing.kind == "dir" and entry.kind != "dir":
            children = [k for k in self.wanted if k.startswith(relpath + "/")]
            if children:
                self.fail("%r is staged as a directory (it holds %r) and cannot also be a file" % (relpath, children[0]))
        self.wanted[relpath] = entry

    def collect(self):
        p = self.params
        global_excludes = p["exclude"] or []
        for source in p["sources"]:
            src = os.path.abspath(source["src"])  # type=path: ~ and $VARS already expanded
            if not os.path.lexists(src):
                if source["optional"]:
                    continue
                self.fail("Source %r does not exist (set optional: true to skip a missing source)" % src)
            link = source["link"]
            if os.path.isdir(src) and not os.path.islink(src):
                base = (source["dest"] or "").strip("/")
                if base:
                    self._add(base, _Entry("dir"))
                excluder = _Excluder(list(global_excludes) + list(source["exclude"] or []))
                includer = _Includer(source["include"]) if source["include"] is not None else None
                self._collect_tree(src, base, excluder, includer, link)
            else:
                rel = source["dest"] if source["dest"] else os.path.basename(src)
                if rel.endswith("/"):
                    rel = rel + os.path.basename(src)
                self._add(rel, self._entry_for(src, link))
        for spec in p["files"]:
            try:
                mode = int(spec["mode"], 8)
            except ValueError:
                self.fail("files[].mode %r is not an octal number" % spec["mode"])
            self._add(spec["dest"], _Entry("data", content=spec["content"].encode("utf-8"), mode=mode & 0o7777))

    def _entry_for(self, path, link):
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            return _Entry("symlink", target=os.readlink(path))
        if not stat.S_ISREG(st.st_mode):
            self.fail("%r is neither a regular file, a directory nor a symbolic link" % path)
        return _Entry("file", src=path, mode=stat.S_IMODE(st.st_mode), link=link)

    def _collect_tree(self, root, base, excluder, includer, link):
        def onerror(err):
            self.fail("Cannot read %r: %s" % (err.filename, err.strerror))

        for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
            reldir = os.path.relpath(dirpath, root).replace(os.sep, "/")
            reldir = "" if reldir == "." else reldir
            keep = []
            for name in sorted(dirnames):
                rel = reldir + "/" + name if reldir else name
                full = os.path.join(dirpath, name)
                wanted = includer is None or includer.included(rel)
                if os.path.islink(full):
                    # A link to a directory is staged as a link, like any other link.
                    if wanted and not excluder.excluded(rel, False):
                        self._add(_join(base, rel), _Entry("symlink", target=os.readlink(full)))
                    continue
                if excluder.excluded(rel, True) or not (wanted or includer.may_contain(rel)):
                    continue
                keep.append(name)
                if wanted:
                    self._add(_join(base, rel), _Entry("dir"))
            dirnames[:] = keep
            for name in sorted(filenames):
                rel = reldir + "/" + name if reldir else name
                if excluder.excluded(rel, False) or not (includer is None or includer.included(rel)):
                    continue
                self._add(_join(base, rel), self._entry_for(os.path.join(dirpath, name), link))

    # ---------------------------------------------------------------- digests
    def load_cache(self):
        try:
            with open(self.cache_file, "r", encoding="utf-8") as handle:
                data = json.load(handle)
            if isinstance(data, dict) and data.get("version") == 1:
                self.cache = data.get("files", {})
        except (OSError, ValueError):
            self.cache = {}

    def save_cache(self, used):
        if self.check_mode:
            return
        if not self.cache_dirty and set(self.cache) == used:
            return
        files = {k: v for k, v in self.cache.items() if k in used}
        directory = os.path.dirname(self.cache_file) or "."
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".hashcache-", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"version": 1, "files": files}, handle, sort_keys=True)
        os.replace(tmp, self.cache_file)

    def digest_of(self, path):
        """Return (sha256 hex, size) of a file, from the cache when its size, mtime and inode are unchanged."""
        st = os.stat(path)
        key = [st.st_size, st.st_mtime_ns, st.st_ino]
        cached = self.cache.get(path)
        if cached and cached[:3] == key:
            return cached[3], st.st_size
        digest = _file_digest(path)
        self.cache[path] = key + [digest]
        self.cache_dirty = True
        return digest, st.st_size

    # ---------------------------------------------------------------- syncing
    @staticmethod
    def _note(bucket, relpath):
        bucket.append(relpath)

    def sync(self):
        if not self.check_mode:
            os.makedirs(self.dest, exist_ok=True)
        # Remove what is not wanted first (deepest paths first), so a file can replace a directory and vice versa.
        if os.path.isdir(self.dest):
            for dirpath, dirnames, filenames in os.walk(self.dest, topdown=False):
                reldir = os.path.relpath(dirpath, self.dest).replace(os.sep, "/")
                reldir = "" if reldir == "." else reldir
                for name in filenames + dirnames:
                    rel = reldir + "/" + name if reldir else name
                    full = os.path.join(dirpath, name)
                    entry = self.wanted.get(rel)
                    is_dir = os.path.isdir(full) and not os.path.islink(full)
                    if entry is None or (entry.kind == "dir") != is_dir:
                        self._note(self.removed, rel)
                        self._removed_set.add(rel)
                        if not self.check_mode:
                            if is_dir:
                                shutil.rmtree(full)
                            else:
                                os.unlink(full)
        for relpath in sorted(self.wanted):
            entry = self.wanted[relpath]
            full = os.path.join(self.dest, relpath)
            if entry.kind == "dir":
                if os.path.isdir(full) and not os.path.islink(full):
                    self.unchanged += 1
                else:
                    self._note(self.added, relpath)
                    if not self.check_mode:
                        os.makedirs(full, exist_ok=True)
                continue
            exists = relpath not in self._removed_set and os.path.lexists(full)
            if exists and self._same(entry, full):
                self.unchanged += 1
                continue
            self._note(self.updated if exists else self.added, relpath)
            if not self.check_mode:
                self._write(entry, full)

    def _same(self, entry, full):
        st = os.lstat(full)
        if entry.kind == "symlink":
            return stat.S_ISLNK(st.st_mode) and os.readlink(full) == entry.target
        if not stat.S_ISREG(st.st_mode):
            return False
        if entry.kind == "data":
            if st.st_size != len(entry.content) or stat.S_IMODE(st.st_mode) != entry.mode:
                return False
            with open(full, "rb") as handle:
                return handle.read() == entry.content
        src = os.stat(entry.src)
        if entry.link and (src.st_ino, src.st_dev) == (st.st_ino, st.st_dev):
            return True
        if src.st_size != st.st_size or stat.S_IMODE(src.st_mode) != stat.S_IMODE(st.st_mode):
            return False
        if src.st_mtime_ns == st.st_mtime_ns:
            return True
        # Same size, other mtime (a touched file): same content means nothing to rewrite; only carry the mtime over.
        if self.digest_of(entry.src)[0] != _file_digest(full):
            return False
        if not self.check_mode:
            os.utime(full, ns=(st.st_atime_ns, src.st_mtime_ns))
        return True

    def _write(self, entry, full):
        parent = os.path.dirname(full)
        os.makedirs(parent, exist_ok=True)
        if os.path.lexists(full) and os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        if entry.kind == "symlink":
            tmp = os.path.join(parent, ".ktrdr-tmp-%d-%s" % (os.getpid(), os.path.basename(full)))
            os.symlink(entry.target, tmp)
            os.replace(tmp, full)
            return
        if entry.kind == "file" and entry.link:
            tmp = os.path.join(parent, ".ktrdr-tmp-%d-%s" % (os.getpid(), os.path.basename(full)))
            try:
                os.link(entry.src, tmp)
                os.replace(tmp, full)
                return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
        fd, tmp = tempfile.mkstemp(prefix=".ktrdr-tmp-", dir=parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                if entry.kind == "data":
                    handle.write(entry.content)
                else:
                    with open(entry.src, "rb") as source:
                        shutil.copyfileobj(source, handle, _CHUNK)
            if entry.kind == "data":
                os.chmod(tmp, entry.mode)
            else:
                shutil.copystat(entry.src, tmp)
            os.replace(tmp, full)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise

    # ---------------------------------------------------------------- hashing
    def content_hash(self):
        sha = hashlib.sha256()
        total = 0
        count = 0
        used = set()
        for relpath in sorted(self.wanted):
            entry = self.wanted[relpath]
            if entry.kind == "dir":
                sha.update(b"D\0" + relpath.encode() + b"\n")
                continue
            count += 1
            if entry.kind == "symlink":
                sha.update(b"L\0" + relpath.encode() + b"\0" + entry.target.encode() + b"\n")
                continue
            if entry.kind == "data":
                digest = hashlib.sha256(entry.content).hexdigest()
                size = len(entry.content)
            else:
                digest, size = self.digest_of(entry.src)
                used.add(entry.src)
            total += size
            line = "F\0%s\0%04o\0%s\n" % (relpath, entry.mode & 0o7777, digest)
            sha.update(line.encode())
        extra = self.params["hash_extra"]
        if extra not in (None, {}, "", []):
            sha.update(b"X\0" + json.dumps(extra, sort_keys=True, separators=(",", ":")).encode() + b"\n")
        return sha.hexdigest(), count, total, used

    def remove(self):
        changed = os.path.lexists(self.dest) or os.path.lexists(self.cache_file)
        if changed and not self.check_mode:
            if os.path.isdir(self.dest) and not os.path.islink(self.dest):
                shutil.rmtree(self.dest)
            elif os.path.lexists(self.dest):
                os.unlink(self.dest)
            if os.path.lexists(self.cache_file):
                os.unlink(self.cache_file)
        result = dict(changed=changed, dest=self.dest, content_hash="", content_hash_short="", file_count=0,
                      total_bytes=0, added=[], updated=[], removed=[self.dest] if changed else [],
                      summary=dict(added=0, updated=0, removed=1 if changed else 0, unchanged=0))
        if self.module._diff:
            result["diff"] = dict(before="%s\n" % self.dest if changed else "", after="",
                                  before_header=self.dest, after_header=self.dest)
        return result

    def run(self):
        if self.params["state"] == "absent":
            return self.remove()
        if os.path.lexists(self.dest) and not os.path.isdir(self.dest):
            self.fail("dest %r exists and is not a directory" % self.dest)
        self.collect()
        self.load_cache()
        digest, count, total, used = self.content_hash()
        self.sync()
        self.save_cache(used)
        changed = bool(self.added or self.updated or self.removed)
        result = dict(
            changed=changed,
            dest=self.dest,
            content_hash=digest,
            content_hash_short=digest[:12],
            file_count=count,
            total_bytes=total,
            added=self.added[:_LIST_LIMIT],
            updated=self.updated[:_LIST_LIMIT],
            removed=self.removed[:_LIST_LIMIT],
            summary=dict(added=len(self.added), updated=len(self.updated), removed=len(self.removed),
                         unchanged=self.unchanged),
        )
        if self.module._diff and changed:
            result["diff"] = dict(
                before_header=self.dest,
                after_header=self.dest,
                before="",
                after=_diff_lines("added", self.added) + _diff_lines("updated", self.updated)
                + _diff_lines("removed", self.removed),
            )
        return result


def _file_digest(path):
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            sha.update(chunk)
    return sha.hexdigest()


def _join(base, rel):
    return base + "/" + rel if base else rel


def _diff_lines(verb, paths):
    lines = ["%-8s%s" % (verb, p) for p in sorted(paths)[:_DIFF_LIMIT]]
    if len(paths) > _DIFF_LIMIT:
        lines.append("%-8s... and %d more" % (verb, len(paths) - _DIFF_LIMIT))
    return "\n".join(lines) + ("\n" if lines else "")


_SOURCE_SPEC = dict(
    src=dict(type="path", required=True),
    dest=dict(type="str"),
    include=dict(type="list", elements="str"),
    exclude=dict(type="list", elements="str", default=[]),
    link=dict(type="bool", default=False),
    optional=dict(type="bool", default=False),
)
_FILE_SPEC = dict(
    dest=dict(type="str", required=True),
    content=dict(type="str", required=True),
    mode=dict(type="str", default="0644"),
)
_DEFAULT_EXCLUDE = [".git", "__pycache__", "*.py[co]", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv",
                    "node_modules", ".DS_Store"]


def _context_spec(top):
    spec = dict(
        dest=dict(type="path", required=not top),
        sources=dict(type="list", elements="dict", default=[], options=_SOURCE_SPEC),
        files=dict(type="list", elements="dict", default=[], options=_FILE_SPEC),
        exclude=dict(type="list", elements="str", default=_DEFAULT_EXCLUDE if top else None),
        hash_extra=dict(type="raw", default={}),
        cache_file=dict(type="path"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    return spec


def main():
    argument_spec = _context_spec(top=True)
    argument_spec["contexts"] = dict(type="list", elements="dict", options=_context_spec(top=False))
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_one_of=[("dest", "contexts")],
        mutually_exclusive=[("dest", "contexts")],
        supports_check_mode=True,
    )
    p = module.params
    current = p["dest"]
    try:
        if p["contexts"] is None:
            module.exit_json(**ContextStager(module, p).run())
        results = []
        for ctx in p["contexts"]:
            current = ctx["dest"]
            if ctx["exclude"] is None:
                ctx["exclude"] = p["exclude"]
            results.append(ContextStager(module, ctx).run())
        changed = any(r["changed"] for r in results)
        out = dict(changed=changed, contexts=results)
        if module._diff and changed:
            out["diff"] = [r["diff"] for r in results if "diff" in r]
        for r in results:
            r.pop("diff", None)
        module.exit_json(**out)
    except OSError as exc:
        module.fail_json(msg="Staging the build context in %s failed: %s" % (current, exc),
                         exception=traceback.format_exc())


if __name__ == "__main__":
    main()
