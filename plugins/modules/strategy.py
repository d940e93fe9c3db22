#!/usr/bin/python
# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: strategy
short_description: Validate, install and confirm ktrdr strategy files
version_added: 0.1.0
description:
  - Validates ktrdr v3 strategy YAML on the managed host first, by ktrdr's own rules (its C(StrategyConfigurationV3) model
    and C(validate_v3_strategy), as the backend's validate endpoint applies them), so a file is accepted or rejected here
    as ktrdr judges it, and fails naming the file and quoting ktrdr's reason. Needs PyYAML on the host, not pydantic.
  - Those rules include the required keys (C(name), C(training_data), C(indicators), C(fuzzy_sets), C(nn_inputs), C(model),
    C(decisions), C(training)); C(training_data.symbols.mode) (V(single) or V(multi_symbol)) and C(training_data.timeframes.mode)
    (V(single) or V(multi_timeframe), with at least two timeframes) and C(history_required) of at least 50; every
    C(nn_inputs) entry naming exactly one of C(fuzzy_set) or C(raw_indicator), with C(timeframes), and C(normalization)
    (V(minmax), V(zscore) or V(none)) only for a C(raw_indicator); references between indicators (C(id) or C(id.output)
    of a multi-output indicator), fuzzy sets, C(nn_inputs), timeframes and C(context_data) resolving; and
    C(decisions.output_format) V(classification) or V(regression) (which needs C(decisions.cost_model)).
    Unknown indicator types are not checked, as ktrdr's v3 validation does not check them.
  - "The name check is ours, not ktrdr's: see O(name_check)."
  - Installs the files as C(<dest_dir>/<name>.yaml), the directory that the backend and the workers read (mounted at
    C(/app/strategies) and named by C(STRATEGIES_DIR) in the containers). A file is only rewritten when its SHA-256 differs.
  - Then confirms through the backend that it sees each file and accepts it (C(POST /api/v1/strategies/validate/{name})),
    and records whether the backend lists it (C(GET /api/v1/strategies/)).
  - With O(state=absent), removes the named strategy files.
author:
  - ktrdr.ops maintainers (@ktrdr-ops)
extends_documentation_fragment:
  - ktrdr.ops._api
  - ktrdr.ops._attributes
  - ktrdr.ops._attributes.ACTIONGROUP_API
attributes:
  check_mode:
    support: full
    details:
      - Validates locally and reports what would be installed or removed; nothing is written and the backend is not asked.
  diff_mode:
    support: full
    details:
      - One diff per file whose content would change (or that would be created or removed).
  idempotent:
    support: full
    details:
      - Files are compared by SHA-256 (and owner, group and mode); an unchanged file is not rewritten.
options:
  src:
    description:
      - A strategy file, or a directory whose C(*.yaml) files are all installed, on the managed host.
      - To install files that live on the controller, pass their text with O(content) (for example with
        C(lookup('ansible.builtin.file', path))), or copy them to the host first.
      - Files ending in C(.yml) in a directory are skipped with a warning, because ktrdr only looks up C(<name>.yaml).
      - With O(state=absent), the names of the files in O(src) are removed from O(dest_dir).
      - Mutually exclusive with O(content) and O(files).
    type: path
  content:
    description:
      - The YAML text of one strategy. It is installed as C(<name>.yaml), with O(name) or else the C(name) key of the YAML.
      - Mutually exclusive with O(src) and O(files).
    type: str
  files:
    description:
      - Several strategies at once, name (the file stem) to YAML text, as from the controller's files - for example
        C(dict(names | zip(query('ansible.builtin.file', *paths, rstrip=false)))). Every one is validated before the first
        is written, and one module run installs the set.
      - With O(state=absent), the named strategy files are removed.
      - Mutually exclusive with O(src) and O(content).
    type: dict
  name:
    description:
      - Strategy name (the file stem) for O(content), or the strategy to remove with O(state=absent).
      - Must match C(^[A-Za-z0-9][A-Za-z0-9_-]*$).
    type: str
  dest_dir:
    description:
      - The strategies directory on the managed host; created (mode 0755) if missing.
    type: path
    required: true
  owner:
    description:
      - Owner of the installed files (name or uid). Default is the user the module runs as.
    type: str
  group:
    description:
      - Group of the installed files (name or gid).
    type: str
  mode:
    description:
      - Permissions of the installed files. The default lets the non-root C(ktrdr) user (uid 10001) in the containers read them.
    type: raw
    default: '0644'
  state:
    description:
      - V(present) validates and installs; V(absent) removes.
    type: str
    choices: [present, absent]
    default: present
  name_check:
    description:
      - What to do when the C(name) key of a file differs from its file stem. ktrdr finds a strategy by its file name but names
        the model directory after C(name), so a mismatch makes models hard to find.
      - V(error) fails, V(warn) installs with a warning, V(ignore) says nothing.
      - The default is V(warn) because ktrdr itself accepts a mismatch and ships such files (C(v3_multi_indicator.yaml) is named
        C(v3_multi_indicator_example)).
    type: str
    choices: [error, warn, ignore]
    default: warn
  confirm:
    description:
      - Ask the backend to validate every installed strategy (C(POST /api/v1/strategies/validate/{name})) and fail if it cannot
        see the file or reports an error.
      - Defaults to V(true) when O(api_url) (or E(KTRDR_API_URL)) is set, else V(false).
    type: bool
  confirm_unchanged:
    description:
      - With O(confirm), also ask the backend about the files that were already installed as given. V(false) asks only about
        the files written (or whose owner, group or mode changed), so a re-run that changes nothing asks the backend nothing.
    type: bool
    default: true
notes:
  - The backend's validate endpoint reads the strategies directory of the backend container (C(/app/strategies)). If the
    confirmation says the backend cannot find a file that was just installed, O(dest_dir) is not the directory mounted there.
  - Upstream ktrdr's C(GET /api/v1/strategies/) skips every v3 file, so RV(strategies[].listed) may be V(false) on a
    healthy backend; only the validate endpoint decides.
seealso:
  - module: ktrdr.ops.operation
"""

EXAMPLES = r"""
- name: Install every strategy of a ktrdr checkout and confirm the backend accepts them
  ktrdr.ops.strategy:
    src: /srv/ktrdr/src/strategies
    dest_dir: /srv/ktrdr/strategies
    owner: "10001"
    group: "10001"
    api_url: http://localhost:8000

- name: Install one strategy from the controller
  ktrdr.ops.strategy:
    content: "{{ lookup('ansible.builtin.file', 'files/strategies/v3_e2e_test.yaml') }}"
    name: v3_e2e_test
    dest_dir: /srv/ktrdr/strategies
    api_url: http://localhost:8000

- name: Install the controller's strategies in one run, asking the backend only about the files written
  vars:
    paths: "{{ query('ansible.builtin.fileglob', 'strategies/*.yaml') | sort }}"
  ktrdr.ops.strategy:
    files: "{{ dict(paths | map('basename') | map('splitext') | map('first') | zip(query('ansible.builtin.file', *paths, rstrip=false))) }}"
    dest_dir: /srv/ktrdr/strategies
    api_url: http://localhost:8000
    confirm_unchanged: false

- name: Remove a retired strategy
  ktrdr.ops.strategy:
    name: v3_old_experiment
    dest_dir: /srv/ktrdr/strategies
    state: absent
"""

RETURN = r"""
strategies:
  description: One entry per strategy handled.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Strategy name (file stem).
      type: str
    path:
      description: Installed (or removed) file.
      type: str
    checksum:
      description: SHA-256 of the file content (of the removed file for O(state=absent)).
      type: str
    changed:
      description: Whether this file was (or in check mode would be) written or removed.
      type: bool
    action:
      description: V(created), V(updated), V(unchanged), V(removed) or V(absent).
      type: str
    valid:
      description: The backend's verdict; V(null) when not confirmed.
      type: bool
    issues:
      description: The backend's issues (C({severity, category, message, details})), warnings included.
      type: list
      elements: dict
    listed:
      description: Whether C(GET /api/v1/strategies/) lists the strategy; V(null) when not confirmed.
      type: bool
  sample:
    - name: v3_e2e_test
      path: /srv/ktrdr/strategies/v3_e2e_test.yaml
      checksum: 1c5d0d6a5f3e2b0a9d8f7e6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928
      changed: true
      action: created
      valid: true
      issues: []
      listed: true
warnings_local:
  description: Local validation warnings (name mismatches with O(name_check=warn), skipped C(.yml) files).
  returned: always
  type: list
  elements: str
  sample: []
retry_log:
  description: One line per HTTP request that had to be retried.
  returned: always
  type: list
  elements: str
  sample: []
"""

import glob
import hashlib
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text

from ansible_collections.ktrdr.ops.plugins.module_utils._api import (
    KtrdrAPIError,
    api_argument_spec,
    client_from_module,
    quote_segment,
)
from ansible_collections.ktrdr.ops.plugins.module_utils._strategy import check_name, validate


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class StrategyInstaller:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.dest_dir = self.p["dest_dir"]
        self.results = []
        self.diffs = []
        self.local_warnings = []
        self.client = None
        self.changed = False

    def fail(self, msg, **extra):
        self.module.fail_json(msg=msg, strategies=self.results, warnings_local=self.local_warnings,
                              retry_log=self.client.retry_log if self.client else [], **extra)

    # -- gathering -------------------------------------------------------------------------------
    def sources(self):
        """[(stem, bytes, label)] for O(state=present)."""
        p = self.p
        if p["files"] is not None:
            return [(str(stem), to_bytes(text, errors="surrogate_or_strict"), "%s.yaml" % stem)
                    for stem, text in sorted(p["files"].items())]
        if p["content"] is not None:
            data = to_bytes(p["content"], errors="surrogate_or_strict")
            stem = p["name"]
            return [(stem, data, "content" + (" (%s)" % stem if stem else ""))]
        src = p["src"]
        if not os.path.exists(src):
            self.fail("src %s does not exist on the managed host (for a file on the controller, use content with a file lookup)" % src)
        if os.path.isdir(src):
            files = sorted(glob.glob(os.path.join(glob.escape(src), "*.yaml")))
            for skipped in sorted(glob.glob(os.path.join(glob.escape(src), "*.yml"))):
                self.local_warnings.append("%s skipped: ktrdr only finds <name>.yaml files; rename it to .yaml" % skipped)
            if not files:
                self.fail("src %s contains no *.yaml strategy files" % src)
        else:
            files = [src]
        out = []
        for path in files:
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
            except (IOError, OSError) as exc:
                self.fail("Cannot read %s: %s" % (path, to_native(exc)))
            stem = os.path.splitext(os.path.basename(path))[0]
            out.append((stem, data, path))
        return out

    def names_to_remove(self):
        if self.p["name"]:
            return [self.p["name"]]
        if self.p["files"] is not None:
            return sorted(self.p["files"])
        if self.p["src"]:
            src = self.p["src"]
            if os.path.isdir(src):
                return [os.path.splitext(os.path.basename(f))[0] for f in sorted(glob.glob(os.path.join(glob.escape(src), "*.yaml")))]
            return [os.path.splitext(os.path.basename(src))[0]]
        if self.p["content"] is not None:
            data, errors, dummy = validate(self.p["content"], "content")
            if data and isinstance(data.get("name"), str):
                return [data["name"]]
            self.fail("state=absent with content needs a 'name' key in the YAML (or set name)")
        self.fail("state=absent needs name, src or content to know which strategy to remove")
        return []

    # -- file handling ---------------------------------------------------------------------------
    def file_args(self, path):
        return self.module.load_file_common_arguments(dict(mode=self.p["mode"], owner=self.p["owner"], group=self.p["group"]), path=path)

    def ensure_dest_dir(self):
        if os.path.isdir(self.dest_dir):
            return
        if os.path.exists(self.dest_dir):
            self.fail("dest_dir %s exists but is not a directory" % self.dest_dir)
        self.changed = True
        if not self.module.check_mode:
            try:
                os.makedirs(self.dest_dir, 0o755)
            except OSError as exc:
                self.fail("Cannot create dest_dir %s: %s" % (self.dest_dir, to_native(exc)))

    def write(self, path, data):
        fd, tmp = tempfile.mkstemp(prefix=".ktrdr-strategy-", suffix=".tmp", dir=self.dest_dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            self.module.atomic_move(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    # -- states ----------------------------------------------------------------------------------
    def present(self):
        sources = self.sources()
        errors = []
        validated = []
        for stem, data, label in sources:
            try:
                text = to_text(data, errors="surrogate_or_strict")
            except UnicodeError:
                errors.append("%s: not UTF-8 text" % label)
                continue
            parsed, errs, warns = validate(text, label, stem=stem, name_check=self.p["name_check"])
            if stem is None and parsed is not None:
                stem = parsed.get("name")
                if not isinstance(stem, str):
                    errs.append("%s: no name given and the YAML has no usable 'name' key; set name" % label)
            if stem is not None:
                bad = check_name(stem)
                if bad:
                    errs.append("%s: %s" % (label, bad))
            errors.extend(errs)
            self.local_warnings.extend(warns)
            validated.append((stem, data, parsed))
        seen = {}
        for stem, dummy, dummy2 in validated:
            seen[stem] = seen.get(stem, 0) + 1
        errors.extend("strategy %s is given %d times" % (s, n) for s, n in sorted(seen.items()) if n > 1 and s)
        if errors:
            self.fail("Strategy validation failed (nothing installed): " + " | ".join(errors), errors=errors)

        self.ensure_dest_dir()
        for stem, data, parsed in validated:
            path = os.path.join(self.dest_dir, stem + ".yaml")
            new_sum = sha256(data)
            old = None
            if os.path.isfile(path):
                with open(path, "rb") as fh:
                    old = fh.read()
            content_changed = old is None or sha256(old) != new_sum
            if content_changed:
                self.diffs.append(dict(
                    before_header=path if old is not None else "%s (absent)" % path,
                    after_header=path,
                    before=to_text(old, errors="surrogate_or_replace") if old is not None else "",
                    after=to_text(data, errors="surrogate_or_replace"),
                ))
                if not self.module.check_mode:
                    self.write(path, data)
            attrs_changed = False
            if not (self.module.check_mode and old is None):
                attrs_changed = self.module.set_fs_attributes_if_different(self.file_args(path), False)
            entry_changed = content_changed or attrs_changed
            self.changed |= entry_changed
            self.results.append(dict(
                name=stem,
                yaml_name=parsed.get("name") if isinstance(parsed, dict) else None,
                path=path,
                checksum=new_sum,
                changed=entry_changed,
                action="created" if old is None else ("updated" if entry_changed else "unchanged"),
                valid=None,
                issues=[],
                listed=None,
            ))

        # Nothing written and confirm_unchanged=false: nothing to ask the backend (not even its listing).
        wanted = self.p["confirm_unchanged"] or any(e["changed"] for e in self.results)
        if self.should_confirm() and not self.module.check_mode and wanted:
            self.confirm()

    def absent(self):
        for stem in self.names_to_remove():
            bad = check_name(stem)
            if bad:
                self.fail(bad)
            path = os.path.join(self.dest_dir, stem + ".yaml")
            entry = dict(name=stem, path=path, checksum=None, changed=False, action="absent", valid=None, issues=[], listed=None)
            if os.path.lexists(path):
                with open(path, "rb") as fh:
                    old = fh.read()
                entry.update(checksum=sha256(old), changed=True, action="removed")
                self.diffs.append(dict(before_header=path, after_header="%s (absent)" % path,
                                       before=to_text(old, errors="surrogate_or_replace"), after=""))
                if not self.module.check_mode:
                    try:
                        os.unlink(path)
                    except OSError as exc:
                        self.fail("Cannot remove %s: %s" % (path, to_native(exc)))
                self.changed = True
            self.results.append(entry)

    # -- backend confirmation --------------------------------------------------------------------
    def should_confirm(self):
        if self.p["confirm"] is None:
            return bool(self.p["api_url"])
        if self.p["confirm"] and not self.p["api_url"]:
            self.fail("confirm=true needs api_url (or KTRDR_API_URL) to reach the backend")
        return self.p["confirm"]

    def confirm(self):
        self.client = client_from_module(self.module)
        listed_names = None
        try:
            listing = self.client.get("/strategies/")
            items = listing.get("strategies") if isinstance(listing, dict) else listing
            listed_names = {n for s in items or [] if isinstance(s, dict) for n in (s.get("name"), s.get("file_name")) if n}
        except KtrdrAPIError as exc:
            self.local_warnings.append("Could not list strategies (%s); only the validate endpoint was used" % exc)
        problems = []
        for entry in self.results:
            if not (entry["changed"] or self.p["confirm_unchanged"]):
                continue
            path = "/strategies/validate/%s" % quote_segment(entry["name"])
            try:
                answer = self.client.post(path)
            except KtrdrAPIError as exc:
                if exc.status == 404:
                    problems.append("the backend cannot see %s.yaml (%s); is %s the directory mounted at /app/strategies in the "
                                    "backend container?" % (entry["name"], exc.detail or "HTTP 404", self.dest_dir))
                    entry["valid"] = False
                    continue
                self.fail("Could not confirm strategy %s with the backend: %s" % (entry["name"], exc), **exc.as_result())
            entry["valid"] = bool(answer.get("valid"))
            entry["issues"] = answer.get("issues") or []
            if listed_names is not None:
                entry["listed"] = entry["name"] in listed_names or entry.get("yaml_name") in listed_names
            if not entry["valid"]:
                errs = [i.get("message") for i in entry["issues"] if isinstance(i, dict) and i.get("severity") == "error"]
                problems.append("the backend rejects %s: %s" % (entry["name"], "; ".join(errs) or answer.get("message") or "invalid"))
            for issue in entry["issues"]:
                if isinstance(issue, dict) and issue.get("severity") == "warning":
                    self.local_warnings.append("%s: backend warning: %s" % (entry["name"], issue.get("message")))
        if problems:
            self.fail("Installed, but the backend does not accept %s: %s"
                      % ("it" if len(self.results) == 1 else "all strategies", " | ".join(problems)), changed=self.changed)

    def run(self):
        if self.p["state"] == "present":
            self.present()
        else:
            self.absent()
        for warning in self.local_warnings:
            self.module.warn(warning)
        result = dict(changed=self.changed, strategies=self.results, warnings_local=self.local_warnings,
                      retry_log=self.client.retry_log if self.client else [])
        if self.module._diff and self.diffs:
            result["diff"] = self.diffs
        result["msg"] = "; ".join("strategy %s %s" % (e["name"], e["action"]) for e in self.results)
        self.module.exit_json(**result)


def main():
    argument_spec = api_argument_spec()
    argument_spec.update(
        src=dict(type="path"),
        content=dict(type="str"),
        name=dict(type="str"),
        dest_dir=dict(type="path", required=True),
        owner=dict(type="str"),
        group=dict(type="str"),
        mode=dict(type="raw", default="0644"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        name_check=dict(type="str", default="warn", choices=["error", "warn", "ignore"]),
        confirm=dict(type="bool"),
        confirm_unchanged=dict(type="bool", default=True),
        files=dict(type="dict"),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("src", "content", "files")],
        required_if=[("state", "present", ("src", "content", "files"), True)],
    )
    if module.params["name"] and (module.params["src"] or module.params["files"] is not None):
        module.fail_json(msg="name applies to content (or to state=absent); with src or files the names come from the file names "
                             "or the keys of files")
    StrategyInstaller(module).run()


if __name__ == "__main__":
    main()
