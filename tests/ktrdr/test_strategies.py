"""Our local strategy verdict (module_utils/_strategy) against the real ktrdr's, for every file in
$KTRDR_SRC/strategies and for broken variants of our fixtures:

- ktrdr's own StrategyValidator from $KTRDR_SRC, run by $KTRDR_PYTHON (skipped, with the import error,
  when ktrdr does not import there): same verdict, same error messages, same warnings;
- ktrdr's backend at $KTRDR_API_URL (POST /api/v1/strategies/validate/{name}, which reads the files
  of its own strategies/ directory, the same files in ktrdr's image): same verdict.

Not part of `make test`; `make test-ktrdr KTRDR_SRC=... KTRDR_API_URL=...` runs it. See conftest.py.
"""

import copy
import datetime
import glob
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import yaml
from conftest import TABLES

from ansible_collections.ktrdr.ops.plugins.module_utils._strategy import INDICATOR_OUTPUTS, ktrdr_check, validate

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "unit", "fixtures", "strategies")
SRC = os.environ.get("KTRDR_SRC")
API_URL = os.environ.get("KTRDR_API_URL")
PYTHON = os.environ.get("KTRDR_PYTHON") or sys.executable

pytestmark = pytest.mark.skipif(not SRC, reason="KTRDR_SRC is not set: point it at a ktrdr checkout "
                                "(make test-ktrdr KTRDR_SRC=<checkout> KTRDR_API_URL=<backend>)")


def ktrdr_files():
    files = sorted(glob.glob(os.path.join(SRC, "strategies", "*.yaml"))) if SRC else []
    return {os.path.splitext(os.path.basename(p))[0]: p for p in files}


def read(path):
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def ours(text, stem):
    """(valid, errors, warnings): the module's verdict (errors as it words them) and ktrdr_check's warnings."""
    data, errors, dummy = validate(text, "%s.yaml" % stem, stem=stem, name_check="ignore")
    return not errors, errors, (ktrdr_check(data)[1] if isinstance(data, dict) else [])


def ktrdr_lines(errors):
    """ktrdr's cross-section failure is one message with one line per problem; split it."""
    out = []
    for error in errors:
        head = "Strategy validation failed:\n  - "
        out += error[len(head):].split("\n  - ") if error.startswith(head) else [error]
    return out


def reason(errors):
    return "; ".join(e.replace("\n", " ") for e in errors) or "-"


# -- ktrdr's StrategyValidator, in the Python that imports it ------------------------------------

_SIDE = {}


def run_ktrdr(texts):
    """{label: {valid, errors, warnings}} from ktrdr's own code; skips the test when ktrdr cannot import."""
    key = json.dumps(texts, sort_keys=True)
    if key not in _SIDE:
        proc = subprocess.run([PYTHON, os.path.join(HERE, "ktrdr_side.py")], input=json.dumps({"src": SRC, "texts": texts}),
                              capture_output=True, text=True, timeout=600, cwd=HERE,
                              env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        if proc.returncode != 0:
            pytest.fail("ktrdr_side.py failed (%s): %s" % (proc.returncode, proc.stderr[-2000:]))
        _SIDE[key] = json.loads(proc.stdout)
    answer = _SIDE[key]
    if answer["import_error"]:
        pytest.skip("ktrdr's StrategyValidator does not import with %s from %s (%s); set KTRDR_PYTHON to a Python "
                    "with pydantic, pydantic-settings, pyyaml, python-dotenv, pandas and httpx"
                    % (PYTHON, SRC, answer["import_error"]))
    return answer


def test_indicator_outputs_match_ktrdr_registry():
    registry = run_ktrdr({})["registry"]
    assert registry, "ktrdr's INDICATOR_REGISTRY is empty"
    theirs = {name: tuple(outputs) for name, outputs in registry.items()}
    assert INDICATOR_OUTPUTS == theirs, "update INDICATOR_OUTPUTS in plugins/module_utils/_strategy.py"


def test_every_ktrdr_strategy_as_ktrdr_validator_judges_it():
    files = ktrdr_files()
    assert files, "no strategies/*.yaml in %s" % SRC
    texts = {stem: read(path) for stem, path in files.items()}
    theirs = run_ktrdr(texts)["results"]
    rows, wrong = [], []
    for stem, text in texts.items():
        valid, errors, warnings = ours(text, stem)
        t = theirs[stem]
        same = valid == t["valid"]
        rows.append((stem, "valid" if valid else "invalid", "valid" if t["valid"] else "invalid", same,
                     reason(errors if not valid else ktrdr_lines(t["errors"]))))
        if not same:
            wrong.append("%s: ours %s (%s), ktrdr %s (%s)" % (stem, valid, reason(errors), t["valid"], reason(t["errors"])))
        elif not valid or warnings != t["warnings"]:
            ours_lines = ktrdr_check(yaml.safe_load(text))
            if ours_lines[0] != ktrdr_lines(t["errors"]) or ours_lines[1] != t["warnings"]:
                wrong.append("%s: same verdict, other words: ours %r, ktrdr %r" % (stem, ours_lines, (t["errors"], t["warnings"])))
    TABLES["ktrdr StrategyValidator (%s), %s/strategies" % (PYTHON, SRC)] = rows
    assert not wrong, "\n".join(wrong)


def test_our_strategies_as_ktrdr_validator_judges_them():
    """The reference service's strategies and our fixtures are ktrdr strategies too."""
    paths = sorted(glob.glob(os.path.join(HERE, "..", "..", "deploy", "reference", "strategies", "*.yaml"))
                   + glob.glob(os.path.join(FIXTURES, "*.yaml")))
    texts = {os.path.relpath(p, os.path.join(HERE, "..", "..")): read(p) for p in paths}
    theirs = run_ktrdr(texts)["results"]
    rows = []
    for label, text in texts.items():
        valid, errors, dummy = ours(text, "x")
        rows.append((label, "valid" if valid else "invalid", "valid" if theirs[label]["valid"] else "invalid",
                     valid == theirs[label]["valid"], reason(errors or ktrdr_lines(theirs[label]["errors"]))))
    TABLES["ktrdr StrategyValidator, this repository's strategies"] = rows
    assert all(r[1] == r[2] == "valid" for r in rows), rows


# -- broken variants of our fixtures, judged by ktrdr's validator --------------------------------

def fixture(name):
    with open(os.path.join(FIXTURES, name + ".yaml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def at(data, path):
    for key in path:
        data = data[key]
    return data


def set_(path, value):
    def change(data):
        at(data, path[:-1])[path[-1]] = value
    return change


def del_(path):
    def change(data):
        del at(data, path[:-1])[path[-1]]
    return change


def both(*changes):
    def change(data):
        for c in changes:
            c(data)
    return change


VARIANTS = [
    # (label, base fixture, change): each is dumped to YAML and judged by both sides.
    ("hybrid as is", "v3_hybrid", None),
    ("regression as is", "v3_regression", None),
    ("context as is", "v3_context", None),
    ("nn fuzzy_set and raw_indicator", "v3_hybrid", set_(("nn_inputs", 2, "fuzzy_set"), "rsi_momentum")),
    ("nn neither", "v3_hybrid", del_(("nn_inputs", 2, "raw_indicator"))),
    ("nn empty raw_indicator", "v3_hybrid", set_(("nn_inputs", 2, "raw_indicator"), "")),
    ("nn normalization with fuzzy_set", "v3_hybrid", set_(("nn_inputs", 0, "normalization"), "zscore")),
    ("nn normalization none with fuzzy_set", "v3_hybrid", set_(("nn_inputs", 0, "normalization"), "none")),
    ("nn normalization null with fuzzy_set", "v3_hybrid", set_(("nn_inputs", 0, "normalization"), None)),
    ("nn normalization unknown", "v3_hybrid", set_(("nn_inputs", 2, "normalization"), "robust")),
    ("nn raw without normalization", "v3_hybrid", del_(("nn_inputs", 3, "normalization"))),
    ("nn raw unknown indicator", "v3_hybrid", set_(("nn_inputs", 3, "raw_indicator"), "atr_14")),
    ("nn raw dot on single-output", "v3_hybrid", set_(("nn_inputs", 3, "raw_indicator"), "rsi_14.value")),
    ("nn raw bad output", "v3_hybrid", set_(("nn_inputs", 2, "raw_indicator"), "adx_14.adxr")),
    ("nn raw dot on unknown type", "v3_hybrid", both(set_(("indicators", "adx_14", "type"), "adx_custom"),
                                                     set_(("nn_inputs", 2, "raw_indicator"), "adx_14.whatever"))),
    ("nn raw int", "v3_hybrid", set_(("nn_inputs", 3, "raw_indicator"), 14)),
    ("nn fuzzy_set unknown", "v3_hybrid", set_(("nn_inputs", 0, "fuzzy_set"), "rsi_fast")),
    ("nn timeframes unknown", "v3_hybrid", set_(("nn_inputs", 1, "timeframes"), ["1h", "1d"])),
    ("nn timeframes plain string", "v3_hybrid", set_(("nn_inputs", 1, "timeframes"), "1d")),
    ("nn timeframes int", "v3_hybrid", set_(("nn_inputs", 1, "timeframes"), 5)),
    ("nn timeframes int in list", "v3_hybrid", set_(("nn_inputs", 1, "timeframes"), ["1h", 4])),
    ("nn timeframes missing", "v3_hybrid", del_(("nn_inputs", 0, "timeframes"))),
    ("nn entry not a mapping", "v3_hybrid", set_(("nn_inputs", 1), "macd_trend")),
    ("nn_inputs empty", "v3_hybrid", set_(("nn_inputs",), [])),
    ("nn_inputs mapping", "v3_hybrid", set_(("nn_inputs",), {"rsi_momentum": "all"})),
    ("fuzzy unknown indicator", "v3_hybrid", set_(("fuzzy_sets", "rsi_momentum", "indicator"), "ema_9")),
    ("fuzzy dot on single-output", "v3_hybrid", set_(("fuzzy_sets", "rsi_momentum", "indicator"), "rsi_14.x")),
    ("fuzzy bad output", "v3_hybrid", set_(("fuzzy_sets", "macd_trend", "indicator"), "macd_12_26_9.hist")),
    ("fuzzy no memberships", "v3_hybrid", set_(("fuzzy_sets", "rsi_momentum"), {"indicator": "rsi_14"})),
    ("fuzzy only extra key", "v3_hybrid", set_(("fuzzy_sets", "rsi_momentum"), {"indicator": "rsi_14", "input_transform": {"type": "price_ratio"}})),
    ("fuzzy short membership", "v3_hybrid", set_(("fuzzy_sets", "rsi_momentum", "oversold"), [0, 25])),
    ("fuzzy set is a list", "v3_hybrid", set_(("fuzzy_sets", "rsi_momentum"), [0, 25, 40])),
    ("fuzzy set is null", "v3_hybrid", set_(("fuzzy_sets", "macd_trend"), None)),
    ("fuzzy indicator int", "v3_hybrid", set_(("fuzzy_sets", "rsi_momentum", "indicator"), 14)),
    ("fuzzy indicator missing", "v3_hybrid", del_(("fuzzy_sets", "rsi_momentum", "indicator"))),
    ("fuzzy_sets empty", "v3_hybrid", both(set_(("fuzzy_sets",), {}), set_(("nn_inputs",), [{"raw_indicator": "rsi_14", "timeframes": "all"}]))),
    ("indicators as v2 list", "v3_hybrid", set_(("indicators",), [{"name": "rsi", "period": 14}])),
    ("indicator without type", "v3_hybrid", del_(("indicators", "adx_14", "type"))),
    ("indicator type int", "v3_hybrid", set_(("indicators", "adx_14", "type"), 7)),
    ("indicator not a mapping", "v3_hybrid", set_(("indicators", "adx_14"), "adx")),
    ("indicator unknown type", "v3_hybrid", set_(("indicators", "rsi_14", "type"), "not_an_indicator")),
    ("indicator unused", "v3_hybrid", set_(("indicators", "ema_20"), {"type": "ema", "period": 20})),
    ("indicator int key", "v3_hybrid", set_(("indicators", 5), {"type": "rsi"})),
    ("symbols mode unknown", "v3_hybrid", set_(("training_data", "symbols", "mode"), "Single")),
    ("symbols single empty symbol", "v3_hybrid", set_(("training_data", "symbols", "symbol"), "")),
    ("symbols single no symbol", "v3_hybrid", del_(("training_data", "symbols", "symbol"))),
    ("symbols multi empty list", "v3_regression", set_(("training_data", "symbols", "list"), [])),
    ("symbols multi list and symbols", "v3_regression", set_(("training_data", "symbols", "symbols"), [])),
    ("symbols multi null", "v3_regression", set_(("training_data", "symbols", "list"), None)),
    ("symbols a list", "v3_regression", set_(("training_data", "symbols"), ["EURUSD"])),
    ("symbols missing", "v3_regression", del_(("training_data", "symbols"))),
    ("symbols volatility range reversed", "v3_regression",
     set_(("training_data", "symbols", "selection_criteria"), {"volatility_range": [0.2, 0.1]})),
    ("symbols volatility range text", "v3_regression",
     set_(("training_data", "symbols", "selection_criteria"), {"volatility_range": ["low", "high"]})),
    ("timeframes multi with one", "v3_hybrid", set_(("training_data", "timeframes", "timeframes"), ["1h"])),
    ("timeframes multi empty", "v3_hybrid", set_(("training_data", "timeframes", "timeframes"), [])),
    ("timeframes multi via list alias", "v3_hybrid", set_(("training_data", "timeframes", "list"), ["1h", "1d"])),
    ("timeframes base not listed", "v3_hybrid", set_(("training_data", "timeframes", "base_timeframe"), "1d")),
    ("timeframes mode unknown", "v3_hybrid", set_(("training_data", "timeframes", "mode"), "multi")),
    ("timeframes single empty", "v3_regression", set_(("training_data", "timeframes", "timeframe"), "")),
    ("timeframes single none", "v3_regression", del_(("training_data", "timeframes", "timeframe"))),
    ("timeframes entry int", "v3_hybrid", set_(("training_data", "timeframes", "timeframes"), ["1h", 4])),
    ("history 20", "v3_hybrid", set_(("training_data", "history_required"), 20)),
    ("history 50", "v3_hybrid", set_(("training_data", "history_required"), 50)),
    ("history as text", "v3_hybrid", set_(("training_data", "history_required"), "120")),
    ("history fractional", "v3_hybrid", set_(("training_data", "history_required"), 75.5)),
    ("history null", "v3_hybrid", set_(("training_data", "history_required"), None)),
    ("history words", "v3_hybrid", set_(("training_data", "history_required"), "lots")),
    ("start_date unquoted", "v3_hybrid", set_(("training_data", "start_date"), datetime.date(2020, 1, 1))),
    ("start_date quoted", "v3_hybrid", set_(("training_data", "start_date"), "2020-01-01")),
    ("training_data missing", "v3_hybrid", del_(("training_data",))),
    ("training_data a list", "v3_hybrid", set_(("training_data",), [])),
    ("version float", "v3_hybrid", set_(("version",), 3.0)),
    ("version null", "v3_hybrid", set_(("version",), None)),
    ("description int", "v3_hybrid", set_(("description",), 42)),
    ("name missing", "v3_hybrid", del_(("name",))),
    ("name int", "v3_hybrid", set_(("name",), 3)),
    ("name empty", "v3_hybrid", set_(("name",), "")),
    ("model a list", "v3_hybrid", set_(("model",), ["mlp"])),
    ("model without type", "v3_hybrid", del_(("model", "type"))),
    ("model int key", "v3_hybrid", set_(("model", 1), "x")),
    ("decisions missing", "v3_hybrid", del_(("decisions",))),
    ("training null", "v3_hybrid", set_(("training",), None)),
    ("several sections missing", "v3_hybrid", both(del_(("model",)), del_(("nn_inputs",)), del_(("fuzzy_sets",)))),
    ("output_format unknown", "v3_hybrid", set_(("decisions", "output_format"), "ranking")),
    ("output_format null", "v3_hybrid", set_(("decisions", "output_format"), None)),
    ("regression no cost model", "v3_regression", del_(("decisions", "cost_model"))),
    ("regression cost model text", "v3_regression", set_(("decisions", "cost_model"), "low")),
    ("regression negative cost", "v3_regression", set_(("decisions", "cost_model", "round_trip_cost"), -1)),
    ("regression multiplier text", "v3_regression", set_(("decisions", "cost_model", "min_edge_multiplier"), "2")),
    ("regression horizon 0", "v3_regression", set_(("training", "labels", "horizon"), 0)),
    ("regression horizon float", "v3_regression", set_(("training", "labels", "horizon"), 2.5)),
    ("regression loss mae", "v3_regression", set_(("training", "loss"), "mae")),
    ("regression labels null", "v3_regression", set_(("training", "labels"), None)),
    ("regression labels null and bad loss", "v3_regression", both(set_(("training", "labels"), None), set_(("training", "loss"), "mae"))),
    ("regression confidence_threshold", "v3_regression", set_(("decisions", "confidence_threshold"), 0.6)),
    ("context unknown source", "v3_context", set_(("indicators", "gbp_rsi_14", "data_source"), "USDJPY")),
    ("context unused", "v3_context", both(del_(("indicators", "gbp_rsi_14", "data_source")),
                                          del_(("indicators", "spread_rsi", "data_source")))),
    ("context none declared", "v3_context", del_(("context_data",))),
    ("context single fred series", "v3_context", both(set_(("context_data", 1, "series"), "DGS2"),
                                                      set_(("indicators", "spread_rsi", "data_source"), "fred_DGS2"))),
    ("context unknown provider", "v3_context", set_(("context_data", 0, "provider"), "dukascopy")),
    ("context cftc", "v3_context", both(set_(("context_data", 1), {"provider": "cftc_cot", "report": "EUR"}),
                                        set_(("indicators", "spread_rsi", "data_source"), "cot_EUR_net_pct"))),
    ("context entry without provider", "v3_context", del_(("context_data", 1, "provider"))),
    ("context series int", "v3_context", set_(("context_data", 1, "series"), 2)),
    ("context not a list", "v3_context", set_(("context_data",), {"provider": "ib"})),
    ("context data_source a list", "v3_context", set_(("indicators", "gbp_rsi_14", "data_source"), ["GBPUSD"])),
    ("context ib without symbol", "v3_context", both(del_(("context_data", 0, "symbol")),
                                                     set_(("indicators", "gbp_rsi_14", "data_source"), "USDJPY"))),
    ("deployment ok", "v3_hybrid", set_(("deployment",), {"target_symbols": {"mode": "universal"},
                                                          "target_timeframes": {"mode": "multi_timeframe", "supported": ["1h"]}})),
    ("deployment bad modes", "v3_hybrid", set_(("deployment",), {"target_symbols": {"mode": "everywhere"},
                                                                 "target_timeframes": {"mode": "multi_timeframe", "supported": []}})),
    ("deployment half", "v3_hybrid", set_(("deployment",), {"target_symbols": {"mode": "universal"}})),
    ("deployment restrictions text", "v3_hybrid", set_(("deployment",), {
        "target_symbols": {"mode": "group_restricted", "restrictions": {"asset_classes": "forex"}},
        "target_timeframes": {"mode": "single"}})),
    ("top-level int key", "v3_hybrid", set_((1,), "one")),
    ("extra top-level key", "v3_hybrid", set_(("scope",), "universal")),
]


def variant_data(variant):
    dummy, base, change = variant
    data = copy.deepcopy(fixture(base))
    if change:
        change(data)
    return data


_TEXTS = {}


def variant_texts():
    """{label: YAML text} of every variant (one ktrdr run judges them all)."""
    if not _TEXTS:
        _TEXTS.update((v[0], yaml.safe_dump(variant_data(v), sort_keys=False)) for v in VARIANTS)
    return _TEXTS


@pytest.mark.parametrize("label", [v[0] for v in VARIANTS])
def test_variant_as_ktrdr_validator_judges_it(label):
    text = variant_texts()[label]
    t = run_ktrdr(variant_texts())["results"][label]
    valid, errors, dummy = ours(text, "variant")
    rows = TABLES.setdefault("ktrdr StrategyValidator, broken variants of tests/unit/fixtures/strategies", [])
    rows.append((label, "valid" if valid else "invalid", "valid" if t["valid"] else "invalid", valid == t["valid"],
                 reason(ktrdr_lines(t["errors"]))))
    assert valid == t["valid"], (errors, t["errors"])
    # Not only the verdict: the same messages (ours quote ktrdr's) and the same warnings.
    assert ktrdr_check(yaml.safe_load(text)) == (ktrdr_lines(t["errors"]), t["warnings"])


# -- ktrdr's backend ------------------------------------------------------------------------------

def api_base():
    base = API_URL.rstrip("/")
    return base if base.endswith("/api/v1") else base + "/api/v1"


@pytest.mark.skipif(not API_URL, reason="KTRDR_API_URL is not set: no real ktrdr backend to ask")
def test_every_ktrdr_strategy_as_the_backend_judges_it():
    files = ktrdr_files()
    assert files, "no strategies/*.yaml in %s" % SRC
    rows, wrong = [], []
    for stem, path in files.items():
        valid, errors, dummy = ours(read(path), stem)
        request = urllib.request.Request("%s/strategies/validate/%s" % (api_base(), stem), data=b"", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                answer = json.loads(response.read())
            theirs = bool(answer.get("valid"))
            their_errors = [i.get("message", "") for i in answer.get("issues") or [] if i.get("severity") == "error"]
            label = "valid" if theirs else "invalid"
        except urllib.error.HTTPError as exc:  # 404: the backend's strategies/ lacks the file
            theirs, their_errors, label = None, ["HTTP %s: %s" % (exc.code, exc.read()[:300].decode("utf-8", "replace"))], "error"
        except (urllib.error.URLError, OSError) as exc:
            pytest.fail("cannot reach the ktrdr backend at KTRDR_API_URL=%s: %s" % (API_URL, exc))
        same = valid == theirs
        rows.append((stem, "valid" if valid else "invalid", label, same, reason(their_errors if not same else errors)))
        if not same:
            wrong.append("%s: ours %s (%s), backend %s (%s)" % (stem, valid, reason(errors), label, reason(their_errors)))
    TABLES["ktrdr backend %s" % api_base()] = rows
    assert not wrong, "\n".join(wrong)
