"""Every boolean a role declares honours `-e name=false`: from the command line it arrives as the string
"false", which Jinja finds true. Each use of such a variable in a condition or an expression must go
through `| bool` (a module option typed bool converts it itself, so `opt: "{{ name }}"` is fine).
This reads every role's argument spec and every task, vars, defaults and template file, and names each use
that does not. A second test runs one real condition with the string, to show what the rule prevents."""

import glob
import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SPAN = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


def booleans():
    names = set()
    for spec in glob.glob(os.path.join(ROOT, "roles", "*", "meta", "argument_specs.yml")):
        for entry in (yaml.safe_load(open(spec)).get("argument_specs") or {}).values():
            names |= {n for n, o in (entry.get("options") or {}).items() if o.get("type") == "bool"}
    return names


def expressions(node, key=None):
    """(expression, is_whole_module_value) for every condition and Jinja span under node."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("when", "changed_when", "failed_when", "until", "that"):
                for cond in (v if isinstance(v, list) else [v]):
                    if isinstance(cond, str):
                        yield cond, False
            else:
                yield from expressions(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from expressions(v, key)
    elif isinstance(node, str):
        whole = re.fullmatch(r"\s*\{\{\s*[\w.]+\s*\}\}\s*", node) is not None
        for span in SPAN.findall(node):
            yield span, whole


def unfiltered_uses():
    names = booleans()
    files = [f for f in glob.glob(os.path.join(ROOT, "roles", "*", "*", "*.yml")) + glob.glob(os.path.join(ROOT, "playbooks", "*.yml"))
             if "/meta/" not in f]
    templates = glob.glob(os.path.join(ROOT, "roles", "*", "templates", "*.j2"))
    bad = []
    for path in files + templates:
        tree = open(path).read() if path.endswith(".j2") else yaml.safe_load(open(path))
        for expr, whole in expressions(tree):
            if whole:
                continue
            for name in names:
                for m in re.finditer(r"\b%s\b(?!\s*[:=]|\s+is\s+(not\s+)?defined)" % re.escape(name), expr):
                    rest = expr[m.end():]
                    if not re.match(r"(\s*\|\s*default\([^()]*\))?\s*\|\s*bool\b", rest):
                        bad.append("%s: %s in %r" % (os.path.relpath(path, ROOT), name, expr.strip()[:120]))
    return sorted(set(bad))


def test_every_boolean_goes_through_the_bool_filter():
    assert booleans() >= {"database_publish", "backend_migrate", "canary_check_torch", "workers_generate_data"}
    bad = unfiltered_uses()
    assert not bad, "booleans used without | bool (-e name=false would count as true):\n" + "\n".join(bad)


def test_the_string_false_is_true_without_the_filter(tmp_path):
    play = tmp_path / "p.yml"
    play.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                    "    - ansible.builtin.debug: {msg: \"raw={{ 'on' if flag else 'off' }}\"}\n"
                    "    - ansible.builtin.debug: {msg: \"filtered={{ 'on' if flag | bool else 'off' }}\"}\n")
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
                          str(play), "-e", "flag=false"], capture_output=True, text=True, cwd=ROOT).stdout
    assert "raw=on" in out and "filtered=off" in out, out
