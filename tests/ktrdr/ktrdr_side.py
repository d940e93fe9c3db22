"""Runs inside the Python that can import ktrdr (KTRDR_PYTHON): ktrdr's own verdicts, as JSON.

Reads {"src": <ktrdr checkout>, "texts": {label: yaml text}} on stdin and writes
{"import_error": str|null, "results": {label: {"valid", "errors", "warnings"}}, "registry": {name: [outputs]|null}}.
Each text is parsed with yaml.safe_load and judged by StrategyValidator().validate_strategy_config,
exactly what ktrdr's POST /api/v1/strategies/validate/{name} does with a file.
"""

import json
import logging
import os
import sys

# ktrdr configures file logging under <checkout>/logs at import unless it thinks a test runs.
os.environ.setdefault("PYTEST_CURRENT_TEST", "tests/ktrdr/ktrdr_side.py::import (call)")
sys.dont_write_bytecode = True


def main():
    request = json.load(sys.stdin)
    sys.path.insert(0, request["src"])
    try:
        import yaml
        from ktrdr.config.strategy_validator import StrategyValidator, _get_indicator_registry

        registry = _get_indicator_registry()
    except Exception as exc:  # noqa: BLE001 - the reason is the answer
        json.dump({"import_error": "%s: %s" % (type(exc).__name__, exc), "results": {}, "registry": {}}, sys.stdout)
        return
    logging.disable(logging.CRITICAL)
    validator = StrategyValidator()
    results = {}
    for label, text in request["texts"].items():
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            results[label] = {"valid": False, "errors": ["YAML: %s" % exc], "warnings": []}
            continue
        result = validator.validate_strategy_config(config)
        results[label] = {"valid": bool(result.is_valid), "errors": list(result.errors), "warnings": list(result.warnings)}
    names = {}
    # Every name and alias (lower case); list_types() alone has only the canonical names.
    for name in getattr(registry, "_types", None) or registry.list_types():
        cls = registry.get(name)
        names[name] = list(cls.get_output_names()) if cls.is_multi_output() else []
    json.dump({"import_error": None, "results": results, "registry": names}, sys.stdout)


if __name__ == "__main__":
    main()
