# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
#
# This module util is PRIVATE to the ktrdr.ops collection. It may change or go away
# without notice; do not use it from other collections.
"""Local validation of ktrdr v3 strategy files, before anything is installed.

The rules are the ones ktrdr applies when it loads a strategy (StrategyConfigurationV3 and the
file lookup), checked early so that a typo fails the deploy with the file, the key and the fix,
rather than a training an hour later. Deliberately not stricter than ktrdr.
"""

from __future__ import annotations

import re

from ansible.module_utils.common.yaml import HAS_YAML, yaml_load

try:
    from yaml import YAMLError
except ImportError:  # pragma: no cover - HAS_YAML says so
    YAMLError = Exception

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
REQUIRED_V3 = ("name", "training_data", "indicators", "fuzzy_sets", "nn_inputs", "model", "decisions", "training")
EXAMPLE = "see strategies/v3_minimal.yaml in ktrdr for a complete v3 file"


def check_name(name):
    """None if ``name`` can be a strategy file stem, else why not."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        return ("%r is not a valid strategy name: ktrdr looks strategies up as <dir>/<name>.yaml and accepts names "
                "matching ^[A-Za-z0-9][A-Za-z0-9_-]*$ (letters, digits, _ and -; no dots or slashes)" % (name,))
    return None


def validate(text, source, stem=None, name_check="error"):
    """Validate one strategy file.

    ``source`` names the file in messages; ``stem`` is the file name without ``.yaml`` (None for
    inline content whose name comes from the YAML itself). Returns ``(data, errors, warnings)``;
    ``data`` is the parsed mapping or None when it could not be parsed.
    """
    errors = []
    warnings = []
    if not HAS_YAML:  # pragma: no cover
        return None, ["PyYAML is required on the managed host to validate strategies"], warnings
    try:
        data = yaml_load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " at line %d, column %d" % (mark.line + 1, mark.column + 1) if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        ctx, ctx_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if ctx and ctx_mark is not None:
            problem += " (%s that starts at line %d, column %d)" % (ctx, ctx_mark.line + 1, ctx_mark.column + 1)
        return None, ["%s: not valid YAML%s: %s; fix the syntax" % (source, where, problem)], warnings
    if not isinstance(data, dict):
        return None, ["%s: the top level must be a mapping of keys (name, indicators, ...), got %s; %s"
                      % (source, type(data).__name__ if data is not None else "an empty file", EXAMPLE)], warnings

    indicators = data.get("indicators")
    if isinstance(indicators, list):
        errors.append("%s: key 'indicators' is a list, which is the v2 format; ktrdr only trains v3 strategies: make "
                      "'indicators' a mapping of id to {type: ..., ...} and add 'nn_inputs' (%s)" % (source, EXAMPLE))
        return data, errors, warnings

    missing = [k for k in REQUIRED_V3 if k not in data]
    for key in missing:
        errors.append("%s: missing required key '%s'; a v3 strategy needs all of %s (%s)" % (source, key, ", ".join(REQUIRED_V3), EXAMPLE))

    name = data.get("name")
    if "name" in data:
        if not isinstance(name, str) or not name.strip():
            errors.append("%s: key 'name' must be a non-empty string, got %r" % (source, name))
        elif stem is not None and name != stem and name_check != "ignore":
            msg = ("%s: key 'name' is %r but the file is %s.yaml; ktrdr finds the strategy by its file name and names the "
                   "model directory after 'name', so keep them equal (rename the file or change 'name')" % (source, name, stem))
            (errors if name_check == "error" else warnings).append(msg)

    def mapping(key):
        value = data.get(key)
        if key in data and not isinstance(value, dict):
            errors.append("%s: key '%s' must be a mapping, got %s" % (source, key, type(value).__name__))
            return None
        return value

    indicators = mapping("indicators")
    if indicators is not None:
        if not indicators:
            errors.append("%s: 'indicators' is empty; define at least one, e.g. rsi_14: {type: rsi, period: 14}" % source)
        for ind_id, spec in indicators.items():
            if not isinstance(spec, dict) or not spec.get("type"):
                errors.append("%s: indicators.%s needs a 'type' (e.g. type: rsi)" % (source, ind_id))

    fuzzy_sets = mapping("fuzzy_sets")
    if fuzzy_sets is not None:
        if not fuzzy_sets:
            errors.append("%s: 'fuzzy_sets' is empty; define at least one fuzzy set over an indicator" % source)
        for fs_id, spec in fuzzy_sets.items():
            if not isinstance(spec, dict):
                errors.append("%s: fuzzy_sets.%s must be a mapping with an 'indicator' key" % (source, fs_id))
                continue
            ref = spec.get("indicator")
            if not ref:
                errors.append("%s: fuzzy_sets.%s has no 'indicator'; name one of the indicators (%s)"
                              % (source, fs_id, ", ".join(sorted(map(str, indicators or {}))) or "none defined"))
            elif isinstance(indicators, dict) and str(ref).split(".", maxsplit=1)[0] not in indicators:
                # "bbands_20_2.upper" picks one output of a multi-output indicator.
                errors.append("%s: fuzzy_sets.%s.indicator is '%s', which is not one of the indicators (%s)"
                              % (source, fs_id, ref, ", ".join(sorted(map(str, indicators))) or "none defined"))

    nn_inputs = data.get("nn_inputs")
    if "nn_inputs" in data:
        if not isinstance(nn_inputs, list) or not nn_inputs:
            errors.append("%s: 'nn_inputs' must be a non-empty list like [{fuzzy_set: rsi_momentum, timeframes: all}]" % source)
        else:
            for i, item in enumerate(nn_inputs):
                ref = item.get("fuzzy_set") if isinstance(item, dict) else None
                if not ref:
                    errors.append("%s: nn_inputs[%d] needs a 'fuzzy_set'" % (source, i))
                elif isinstance(fuzzy_sets, dict) and ref not in fuzzy_sets:
                    errors.append("%s: nn_inputs[%d].fuzzy_set is '%s', which is not one of the fuzzy_sets (%s)"
                                  % (source, i, ref, ", ".join(sorted(map(str, fuzzy_sets))) or "none defined"))

    training_data = mapping("training_data")
    if training_data is not None:
        for key in ("symbols", "timeframes"):
            if key not in training_data:
                errors.append("%s: training_data.%s is missing; ktrdr reads the default %s from it" % (source, key, key))

    model = mapping("model")
    if model is not None and not model.get("type"):
        errors.append("%s: model.type is missing (e.g. type: mlp)" % source)
    mapping("decisions")
    mapping("training")
    return data, errors, warnings
