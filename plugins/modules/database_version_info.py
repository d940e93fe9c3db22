#!/usr/bin/python
# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: database_version_info
short_description: The PostgreSQL major a data volume holds and the one an image runs, before anything is recreated
version_added: 0.1.0
description:
  - Reads C(PG_VERSION) from the data volume O(volume) and the server version of O(image), so that a deployment can
    refuse to start a PostgreSQL of another major on an existing data directory (it would crash-loop with
    "database files are incompatible with server") before the running container is touched.
  - When the container O(container) already runs O(image) on O(volume), the answer is taken from it (one C(docker exec));
    otherwise a one-shot container of O(image) with the volume mounted read-only reads both and is removed.
  - Decides, and says in RV(decision) and RV(message), what the deployment is to do. V(run) - the image runs on
    RV(run_volume) as it is; V(upgrade) - the majors differ, O(upgrade) allows it, so M(ktrdr.ops.database_upgrade)
    is to dump O(volume) with RV(old_image) and restore into O(upgrade_volume); V(refuse) - the caller fails with
    RV(message), which names both majors and the ways out.
  - After an upgrade the data lives in O(upgrade_volume) (labelled C(io.ktrdr.upgrade.from=<volume>), with a
    C(ktrdr-upgrade.json) record in the data directory once the restore was verified); RV(run_volume) names it on every
    later run, so the deployment converges without changing O(volume).
author:
  - ktrdr.ops maintainers (@ktrdr-ops)
extends_documentation_fragment:
  - ktrdr.ops._attributes
  - ktrdr.ops._attributes.ACTIONGROUP_DOCKER
  - ktrdr.ops._docker
attributes:
  check_mode:
    support: partial
    details:
      - Changes nothing, in check mode or not. To read the versions it runs a C(docker exec) in O(container), or a
        short-lived container of O(image) with the volume mounted read-only (label C(io.ktrdr.ops=pgversion), removed
        when it has printed them), in check mode too.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
  idempotent:
    support: full
options:
  volume:
    description: The named volume holding PostgreSQL's data directory (mounted at C(/var/lib/postgresql/data) in use).
    type: str
    required: true
  image:
    description: The PostgreSQL image about to run on that volume.
    type: str
    required: true
  container:
    description: The database container, if one may already run (its image, volume and data directory are read first).
    type: str
  upgrade:
    description:
      - Whether a major switch may be carried out by dumping O(volume) and restoring it into O(upgrade_volume)
        (RV(decision=upgrade)). When false such a switch is refused.
    type: bool
    default: false
  upgrade_volume:
    description: The volume a major upgrade restores into; empty means C(<volume>-pg<major of image>).
    type: str
  old_image:
    description:
      - An image of the volume's major to dump it with, when O(container) is gone or runs another image.
      - Empty takes the image O(container) was created from (its image ID, so a moved tag does not matter).
    type: str
  timeout:
    description: Seconds the one-shot container may take.
    type: int
    default: 60
notes:
  - A volume that does not exist, or is empty (a first deployment), is compatible with every image; but when it is gone
    and a finished upgrade of it exists, that upgrade's volume is the one to run on.
seealso:
  - module: ktrdr.ops.database_upgrade
requirements:
  - Docker SDK for Python on the managed host
"""

EXAMPLES = r"""
- name: Read the PostgreSQL majors of the volume and the image
  ktrdr.ops.database_version_info:
    volume: ktrdr-local-pgdata
    image: ktrdr-postgres:cde1da1e1e67
    container: ktrdr-local-db
    upgrade: "{{ database_major_upgrade | default(false) }}"
  register: pg

- name: Refuse a PostgreSQL major switch
  ansible.builtin.fail:
    msg: "{{ pg.message }}"
  when: pg.decision == 'refuse'
"""

RETURN = r"""
volume_major:
  description: The major in the volume's C(PG_VERSION) (for example V(15)); empty when the volume is missing or empty.
  returned: always
  type: str
  sample: "15"
image_major:
  description: The major of the server in O(image) (from C(postgres --version)); empty when the volume does not exist.
  returned: always
  type: str
  sample: "17"
compatible:
  description: Whether O(image) can run on RV(run_volume) as it is (RV(decision=run)).
  returned: always
  type: bool
decision:
  description: V(run), V(upgrade) or V(refuse) (see the description).
  returned: always
  type: str
  sample: upgrade
run_volume:
  description:
    - The volume the database container is to run on. O(volume), or O(upgrade_volume) once an upgrade into it
      finished (or is about to run, RV(decision=upgrade)).
  returned: always
  type: str
  sample: ktrdr-local-pgdata-pg17
upgrade_volume:
  description: The volume a major upgrade restores into (O(upgrade_volume) or C(<volume>-pg<image major>)); empty when
    no image major was read.
  returned: always
  type: str
upgrade_state:
  description:
    - What RV(upgrade_volume) is. V(absent); V(done) - a verified upgrade of O(volume); V(partial) - left by an upgrade
      that did not finish (M(ktrdr.ops.database_upgrade) removes and redoes it); V(foreign) - a volume that is not an
      upgrade of O(volume).
  returned: always
  type: str
old_image:
  description: The image to dump O(volume) with (O(old_image), or the image ID of O(container) when it runs on O(volume)).
  returned: always
  type: str
container_volume:
  description: The volume O(container) has at the data directory; empty when there is no such container.
  returned: always
  type: str
message:
  description: What was found, and when not compatible, the ways forward.
  returned: always
  type: str
  sample: >-
    The volume ktrdr-local-pgdata holds a PostgreSQL 15 data directory, but ktrdr-postgres:1a2b runs PostgreSQL 17 ...
source:
  description: Where the answer came from, V(container) (the running database), V(oneshot), or V(none) (no volume yet).
  returned: always
  type: str
"""

import json
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ktrdr.ops.plugins.module_utils import _docker

DATA = "/var/lib/postgresql/data"
# Written into the data directory of an upgrade volume once its restore was verified (ktrdr.ops.database_upgrade).
MARKER = "ktrdr-upgrade.json"
# Label of an upgrade volume: the volume it was dumped from.
FROM_LABEL = "io.ktrdr.upgrade.from"
# The data directory's major, then the server's version: the official images have postgres on PATH,
# Debian's packages keep it under /usr/lib/postgresql/<major>/bin. Then the upgrade record, if any, on one line.
PROBE = ('printf "volume=%s\\n" "$(cat {data}/PG_VERSION 2>/dev/null)"; '
         'for p in postgres /usr/lib/postgresql/*/bin/postgres; do v=$("$p" --version 2>/dev/null) && break; done; '
         'printf "server=%s\\n" "$v"; '
         'printf "marker=%s\\n" "$(tr -d "\\n" < {data}/' + MARKER + ' 2>/dev/null)"')


def parse_probe(output):
    """(volume major, image major) from the probe's output; '' where it found none."""
    found = dict(re.findall(r"^(volume|server)=(.*)$", output, re.M))
    server = re.search(r"\(PostgreSQL\)\s+(\d+)", found.get("server", ""))
    return found.get("volume", "").strip(), server.group(1) if server else ""


def parse_marker(output):
    """The upgrade record the probe printed (a dict), or None when there is none (or it is not JSON)."""
    found = re.search(r"^marker=(.*)$", output, re.M)
    try:
        record = json.loads(found.group(1)) if found and found.group(1).strip() else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def default_upgrade_volume(volume, image_major):
    return "%s-pg%s" % (volume, image_major) if image_major else ""


def verdict(volume, image, volume_major, image_major, upgrade_volume=None):
    """(compatible, message) for the two majors."""
    if not volume_major:
        return True, "The volume %s holds no PostgreSQL data yet: %s (PostgreSQL %s) initialises it." % (volume, image, image_major)
    if volume_major == image_major:
        return True, "The volume %s and %s are both PostgreSQL %s." % (volume, image, image_major)
    upgrade_volume = upgrade_volume or default_upgrade_volume(volume, image_major)
    return False, (
        "The volume %s holds a PostgreSQL %s data directory, but %s runs PostgreSQL %s: it would not start on it "
        "(\"database files are incompatible with server\"). Nothing was changed; the running database keeps serving. "
        "Either keep the volume's major (build or pick a PostgreSQL %s image: images_postgres_major=%s, or "
        "database_image), or upgrade to PostgreSQL %s: set database_major_upgrade=true to dump the data with "
        "PostgreSQL %s, restore it into the new volume %s, switch the database to it once the restore is verified and "
        "keep %s untouched for a rollback (or migrate it yourself and set database_volume to the new volume)."
        % (volume, volume_major, image, image_major, volume_major, volume_major, image_major, volume_major,
           upgrade_volume, volume))


def target_state(volume, target):
    """absent, done, partial or foreign: what the upgrade volume is (target: None or dict(labels, marker))."""
    if target is None:
        return "absent"
    if (target.get("labels") or {}).get(FROM_LABEL) != volume:
        return "foreign"
    marker = target.get("marker") or {}
    return "done" if marker.get("from_volume") == volume else "partial"


def plan(volume, image, volume_major, image_major, upgrade_volume, target, container, container_volume,
         allow_upgrade, old_image, old_image_is_new):
    """What the deployment is to do: dict(decision, run_volume, compatible, message, upgrade_state).

    target: None when upgrade_volume does not exist, else dict(labels=..., major=..., marker=...).
    container_volume: the volume the database container has at the data directory ('' without a container).
    """
    state = target_state(volume, target)
    done_major = ((target or {}).get("marker") or {}).get("major") or (target or {}).get("major")

    def out(decision, run_volume, message):
        return dict(decision=decision, run_volume=run_volume, compatible=decision == "run", message=message,
                    upgrade_state=state)

    if volume_major and volume_major == image_major:
        message = verdict(volume, image, volume_major, image_major)[1]
        if container_volume and container_volume != volume:
            message += " The database container runs on %s now: it is switched back to %s%s." % (
                container_volume, volume,
                " (a rollback: what was written to %s since the upgrade is not in %s; %s stays as it is)"
                % (container_volume, volume, container_volume) if container_volume == upgrade_volume else "")
        return out("run", volume, message)
    if state == "done" and done_major == image_major and container_volume in ("", upgrade_volume):
        return out("run", upgrade_volume,
                   "%s was upgraded from %s (PostgreSQL %s) to PostgreSQL %s: %s runs on %s; %s is kept for a "
                   "rollback." % (upgrade_volume, volume, volume_major or "?", image_major, image, upgrade_volume, volume))
    if not volume_major:
        message = verdict(volume, image, volume_major, image_major)[1]
        return out("run", volume, message)
    # The majors differ and the volume holds data.
    if state == "foreign":
        return out("refuse", volume, (
            "The volume %s holds PostgreSQL %s, %s runs PostgreSQL %s, and the volume an upgrade would restore into, %s, "
            "already exists but is not an upgrade of %s (it lacks the label %s=%s). Nothing was changed. Set "
            "database_upgrade_volume to a new name, or keep the volume's major."
            % (volume, volume_major, image, image_major, upgrade_volume, volume, FROM_LABEL, volume)))
    if container_volume and container_volume not in (volume, upgrade_volume):
        return out("refuse", volume, (
            "The database container %s runs on %s, not on database_volume %s (PostgreSQL %s); an upgrade from %s "
            "would not carry its data. Nothing was changed. Set database_volume=%s (and upgrade from there)."
            % (container, container_volume, volume, volume_major, volume, container_volume)))
    if state == "done" and done_major != image_major:
        return out("refuse", volume, (
            "%s holds an upgrade of %s to PostgreSQL %s, not to %s's PostgreSQL %s. Nothing was changed. Set "
            "database_volume=%s and upgrade from there, or keep the volume's major (PostgreSQL %s)."
            % (upgrade_volume, volume, done_major, image, image_major, upgrade_volume, volume_major)))
    if state == "done":  # and the container runs on the old volume again
        return out("refuse", volume, (
            "%s holds an upgrade of %s to PostgreSQL %s, but the database container runs on %s again since (a "
            "rollback, or a switch that failed): %s may miss what was written to %s since. Nothing was changed. Either "
            "remove %s (docker volume rm %s) to upgrade %s afresh (database_major_upgrade=true), or set "
            "database_volume=%s to go back to the upgraded data, or keep the volume's major (PostgreSQL %s)."
            % (upgrade_volume, volume, done_major, volume, upgrade_volume, volume, upgrade_volume, upgrade_volume,
               volume, upgrade_volume, volume_major)))
    if container_volume and container_volume == upgrade_volume:
        return out("refuse", volume, (
            "The database container %s runs on %s, which holds an upgrade of %s that did not finish. Nothing was "
            "changed. Set database_volume=%s if that is the data to keep, or remove the container and %s and run again."
            % (container, upgrade_volume, volume, upgrade_volume, upgrade_volume)))
    message = verdict(volume, image, volume_major, image_major, upgrade_volume)[1]
    if not allow_upgrade:
        return out("refuse", volume, message)
    if not old_image or old_image_is_new:
        return out("refuse", volume, (
            "database_major_upgrade is set, but there is no PostgreSQL %s image to dump %s with: %s. Nothing was "
            "changed. Set database_upgrade_from_image to a PostgreSQL %s image (the one the database ran before)."
            % (volume_major, volume,
               "the container %s already runs %s (PostgreSQL %s)" % (container, image, image_major) if old_image_is_new
               else "there is no container %s to take it from" % container, volume_major)))
    return out("upgrade", upgrade_volume, (
        "The volume %s holds PostgreSQL %s and %s runs PostgreSQL %s: upgrading (database_major_upgrade) - dump with "
        "%s, restore into %s%s, verify, then switch the database to %s; %s is kept for a rollback."
        % (volume, volume_major, image, image_major, old_image, upgrade_volume,
           " (replacing what an unfinished upgrade left there)" if state == "partial" else "", upgrade_volume, volume)))


def mounted_volume(container):
    """The named volume a container has at the data directory, or ''."""
    if container is None:
        return ""
    for mount in container.attrs.get("Mounts") or []:
        if mount.get("Destination") == DATA and mount.get("Type") == "volume":
            return mount.get("Name") or ""
    return ""


def read_volume(cli, volume, image, timeout, container=None):
    """Probe output for a volume: in ``container`` when it runs on it, else a one-shot of ``image`` (read-only)."""
    if container is not None:
        return _docker.exec_in(cli, container.name, ["sh", "-c", PROBE.format(data=DATA)])
    volumes = {volume: {"bind": "/data", "mode": "ro"}} if volume else None
    return _docker.run_oneshot(cli, image, [PROBE.format(data="/data")], {}, entrypoint=["sh", "-c"],
                               volumes=volumes, timeout=timeout, purpose="pgversion")


def get_volume(cli, name):
    try:
        return cli.volumes.get(name)
    except _docker.NotFound:
        return None


def main():
    argument_spec = _docker.docker_argument_spec()
    argument_spec.update(
        volume=dict(type="str", required=True),
        image=dict(type="str", required=True),
        container=dict(type="str"),
        upgrade=dict(type="bool", default=False),
        upgrade_volume=dict(type="str"),
        old_image=dict(type="str"),
        timeout=dict(type="int", default=60),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not _docker.HAS_DOCKER_SDK:
        module.fail_json(msg="ktrdr.ops.database_version_info needs the Docker SDK for Python (%s) on the managed host: "
                             "install python3-docker (the ktrdr.ops.docker_host role does)" % _docker.DOCKER_SDK_ERROR)
    _docker.check_module_params(module)
    p = module.params
    try:
        cli = _docker.client_from_params(p)
        volume_exists = get_volume(cli, p["volume"]) is not None
        image_id = cli.images.get(p["image"]).id
        container = None
        if p["container"]:
            try:
                container = cli.containers.get(p["container"])
            except _docker.NotFound:
                pass
        container_volume = mounted_volume(container)
        running = container is not None and container.status == "running"
        runs_image = container is not None and container.attrs.get("Image") == image_id
        if running and runs_image and container_volume == p["volume"]:
            rc, output = read_volume(cli, p["volume"], p["image"], p["timeout"], container)
            source = "container"
        elif volume_exists or p["upgrade_volume"] or cli.volumes.list(filters={"label": "%s=%s" % (FROM_LABEL, p["volume"])}):
            # Without the volume (removed after an upgrade), still the image's major, to find the upgrade volume.
            rc, output = read_volume(cli, p["volume"] if volume_exists else None, p["image"], p["timeout"])
            source = "oneshot"
        else:  # a first deployment: nothing to be incompatible with, no container to run
            module.exit_json(changed=False, volume_major="", image_major="", compatible=True, source="none",
                             decision="run", run_volume=p["volume"], upgrade_volume=p["upgrade_volume"] or "",
                             upgrade_state="absent", old_image=p["old_image"] or "", container_volume=container_volume,
                             message="The volume %s does not exist yet: %s initialises it." % (p["volume"], p["image"]))
        volume_major, image_major = parse_probe(output)
        if rc != 0 or not image_major:
            module.fail_json(msg="Cannot tell which PostgreSQL %s runs: `postgres --version` printed nothing usable "
                                 "(exit %s). Is it a PostgreSQL image?" % (p["image"], rc), output=output[-2000:])
        upgrade_volume = p["upgrade_volume"] or default_upgrade_volume(p["volume"], image_major)
        target = None
        found = get_volume(cli, upgrade_volume) if upgrade_volume != p["volume"] else None
        if found is not None:
            in_it = container if running and container_volume == upgrade_volume else None
            rc, t_output = read_volume(cli, upgrade_volume, p["image"], p["timeout"], in_it)
            target = dict(labels=found.attrs.get("Labels") or {}, major=parse_probe(t_output)[0],
                          marker=parse_marker(t_output))
        old_image = p["old_image"] or (container.attrs.get("Image", "") if container_volume == p["volume"] else "")
        old_image_is_new = not p["old_image"] and bool(old_image) and old_image == image_id
    except (_docker.DockerRunError, _docker.DockerConfigError, _docker.DockerException) as exc:
        # (one clause: without the SDK every Docker error class is Exception)
        if isinstance(exc, _docker.ImageNotFound) and _docker.HAS_DOCKER_SDK:
            module.fail_json(msg="The image %s is not on the Docker engine at %s: build it (make images) or distribute it first"
                                 % (p["image"], p["docker_host"]))
        module.fail_json(msg="Cannot read the PostgreSQL versions of volume %s and image %s through %s: %s"
                             % (p["volume"], p["image"], p["docker_host"], exc))
    decision = plan(p["volume"], p["image"], volume_major, image_major, upgrade_volume, target, p["container"],
                    container_volume, p["upgrade"], old_image, old_image_is_new)
    module.exit_json(changed=False, volume_major=volume_major, image_major=image_major, source=source,
                     upgrade_volume=upgrade_volume, old_image=old_image, container_volume=container_volume, **decision)


if __name__ == "__main__":
    main()
