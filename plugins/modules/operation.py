#!/usr/bin/python
# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: operation
short_description: Start, wait for, or cancel a ktrdr training or backtest
version_added: 0.1.0
description:
  - Starts a training (C(POST /api/v1/trainings/start)) or a backtest (C(POST /api/v1/backtests/start)), or attaches to an
    existing operation by O(operation_id).
  - With O(state=completed) (the default) it then polls C(GET /api/v1/operations/{id}) until the operation ends, with a deadline
    (O(timeout)), a per-request timeout, and a poll delay that starts at half a second and grows to O(max_poll_interval) with
    jitter, but never sleeps past the end the progress rate predicts (it returns within about a second of the end).
  - It fails at once when the operation goes to C(failed) or C(cancelled), with the backend's error message.
  - When the deadline passes it fails and, with O(cancel_on_timeout=true), cancels the operation first.
  - The result carries the progress samples seen while waiting (RV(progress_log)), the timings, the backend's
    C(result_summary) and a short RV(summary) (model path and accuracy for a training; trades, return, win rate and signal
    distribution for a backtest). A backtest that made 0 trades is reported as a warning.
  - With O(state=cancelled) it cancels the operation O(operation_id) (C(DELETE /api/v1/operations/{id})).
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
      - When starting, nothing is posted; the result shows the request that would be sent (RV(request)).
      - When attaching, the module waits exactly as outside check mode, because it only reads.
      - With O(state=cancelled), nothing is cancelled; C(changed) says whether it would be.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - Starting (O(operation_type)) always starts a new operation and reports a change.
      - Attaching to O(operation_id) never changes anything, and O(state=cancelled) reports a change only when it cancelled an active operation.
options:
  operation_type:
    description:
      - Start a new operation of this type. Mutually exclusive with O(operation_id).
    type: str
    choices: [training, backtesting]
  operation_id:
    description:
      - Attach to this existing operation instead of starting one (for example the RV(operation_id) of an earlier task with
        O(state=started)). Mutually exclusive with O(operation_type).
    type: str
  state:
    description:
      - V(completed) starts or attaches, and waits until the operation has completed.
      - V(started) starts (or looks up) the operation and returns without waiting.
      - V(cancelled) cancels O(operation_id) if it is still active.
    type: str
    choices: [completed, started, cancelled]
    default: completed
  strategy:
    description:
      - Name of the strategy (the file stem of C(<strategies>/<name>.yaml)). Required when starting.
    type: str
  symbols:
    description:
      - Training only. Symbols to train on; when omitted the backend reads them from the strategy's C(training_data).
    type: list
    elements: str
  timeframes:
    description:
      - Training only. Timeframes to train on; when omitted the backend reads them from the strategy's C(training_data).
    type: list
    elements: str
  symbol:
    description:
      - Backtest only. Symbol to trade; when omitted the backend takes the first one of the strategy's C(training_data).
    type: str
  timeframe:
    description:
      - Backtest only. Timeframe to trade; when omitted the backend takes the first one of the strategy's C(training_data).
    type: str
  model_path:
    description:
      - Backtest only, and required for a backtest (ktrdr's backtest worker fails the operation without it).
      - A model directory as the backtest worker sees it, for example the C(summary.model_path) returned by the training, or
        C(/app/models/<strategy name>/<timeframe>_latest).
    type: str
  initial_capital:
    description:
      - Backtest only. Starting capital (the backend's default is 100000).
    type: float
  commission:
    description:
      - Backtest only. Commission per trade as a fraction (the backend's default is 0.001).
    type: float
  slippage:
    description:
      - Backtest only. Slippage as a fraction (the backend's default is 0.0005).
    type: float
  start_date:
    description:
      - First day of data, as C(YYYY-MM-DD). Required for a backtest; a training defaults to the backend's choice.
    type: str
  end_date:
    description:
      - Last day of data, as C(YYYY-MM-DD). Required for a backtest; a training defaults to the backend's choice.
    type: str
  timeout:
    description:
      - Seconds to wait for the operation to end with O(state=completed) (the deadline for the whole wait).
    type: float
    default: 3600
  poll_interval:
    description:
      - Delay between two looks at the operation when its progress moves; otherwise the delay grows by half each time up
        to O(max_poll_interval), with +/-20% jitter. The first look comes after half a second (or O(poll_interval) if
        shorter) and the delay grows from there, so an operation that ends quickly is seen quickly.
      - Once the progress has moved, the module estimates when the operation reaches 100% and never sleeps past that;
        from then on it looks every half second (for up to 15 s), so it returns within about a second of the end.
    type: float
    default: 2
  max_poll_interval:
    description:
      - Longest delay between two looks at the operation.
    type: float
    default: 30
  cancel_on_timeout:
    description:
      - When O(timeout) passes, cancel the operation before failing. Without it the operation keeps running and can be
        attached to again with O(operation_id).
    type: bool
    default: false
  cancel_reason:
    description:
      - Reason recorded with a cancellation (by O(state=cancelled) or O(cancel_on_timeout)).
    type: str
  fail_on_no_trades:
    description:
      - Fail (instead of only warning) when a backtest completes with 0 trades.
    type: bool
    default: false
notes:
  - Right after a start, ktrdr may answer 404 for the new id for a few seconds (the worker inserts the row); the module waits
    through that. An unknown O(operation_id) fails at once.
  - The backend only keeps live progress of worker operations in memory; after a backend restart the percentage may stay
    at its last stored value until the operation ends.
seealso:
  - module: ktrdr.ops.workers_info
  - module: ktrdr.ops.strategy
"""

EXAMPLES = r"""
- name: Train the smoke strategy and wait for the model (at most 20 minutes)
  ktrdr.ops.operation:
    api_url: http://localhost:8000
    operation_type: training
    strategy: v3_e2e_test
    symbols: [EURUSD]
    timeframes: [1h]
    start_date: "2024-01-01"
    end_date: "2024-06-30"
    timeout: 1200
  register: training

- name: Backtest the trained model; cancel it if it runs longer than 10 minutes
  ktrdr.ops.operation:
    api_url: http://localhost:8000
    operation_type: backtesting
    strategy: v3_e2e_test
    symbol: EURUSD
    timeframe: 1h
    model_path: "{{ training.summary.model_path }}"
    start_date: "2024-07-01"
    end_date: "2024-09-30"
    timeout: 600
    cancel_on_timeout: true
  register: backtest

- name: Start a long training without waiting
  ktrdr.ops.operation:
    api_url: http://localhost:8000
    operation_type: training
    strategy: v3_minimal
    state: started
  register: started

- name: Attach to it later and wait for it
  ktrdr.ops.operation:
    api_url: http://localhost:8000
    operation_id: "{{ started.operation_id }}"
    timeout: 7200

- name: Cancel it
  ktrdr.ops.operation:
    api_url: http://localhost:8000
    operation_id: "{{ started.operation_id }}"
    state: cancelled
    cancel_reason: maintenance window
"""

RETURN = r"""
operation_id:
  description: Id of the operation (started or attached). Not returned for a start in check mode.
  returned: success, or failure after the operation was started
  type: str
  sample: op_training_20261122_215501_ab12cd34
status:
  description: Last status seen (C(pending), C(resuming), C(running), C(completed), C(failed) or C(cancelled)).
  returned: when the operation exists
  type: str
  sample: completed
started:
  description: Whether this task started the operation.
  returned: always
  type: bool
  sample: true
progress:
  description: The backend's last progress object of the operation.
  returned: when the operation exists
  type: dict
  sample: {percentage: 100.0, current_step: "Epoch 3/3", steps_completed: 3, steps_total: 3}
progress_log:
  description:
    - Progress samples seen while waiting, one each time the status, percentage or step changed (the first 200 of them,
      then the last one).
  returned: always
  type: list
  elements: dict
  contains:
    elapsed:
      description: Seconds since the module began waiting.
      type: float
    time:
      description: UTC time of the sample (ISO 8601).
      type: str
    status:
      description: Status of the operation.
      type: str
    percentage:
      description: Progress percentage.
      type: float
    step:
      description: The backend's current step message.
      type: str
  sample:
    - {elapsed: 0.0, time: "2026-11-22T21:55:02+00:00", status: running, percentage: 0.0, step: "Loading data"}
    - {elapsed: 6.2, time: "2026-11-22T21:55:08+00:00", status: running, percentage: 66.7, step: "Epoch 2/3"}
    - {elapsed: 9.3, time: "2026-11-22T21:55:11+00:00", status: completed, percentage: 100.0, step: "Epoch 3/3"}
duration_seconds:
  description: Run time of the operation from its start (or creation) to its end, or to now if it has not ended.
  returned: when the operation exists
  type: float
  sample: 9.41
result_summary:
  description: The backend's C(result_summary) of the operation, unchanged.
  returned: when the operation exists
  type: dict
  sample: {model_path: /app/models/v3_e2e_test/1h_v1, training_metrics: {final_train_loss: 0.71}}
summary:
  description:
    - The main numbers of RV(result_summary). For a training C(model_path), C(accuracy), C(loss), C(train_accuracy),
      C(val_accuracy), C(train_loss), C(val_loss) and C(epochs); for a backtest C(trades), C(total_return),
      C(total_return_pct), C(win_rate), C(sharpe_ratio), C(max_drawdown_pct), C(signal_distribution), C(symbol) and
      C(timeframe). C(warnings) lists the operation's warnings (and the 0-trades warning).
  returned: when the operation completed
  type: dict
  sample: {trades: 14, total_return_pct: 1.92, win_rate: 0.57, signal_distribution: {BUY: 40, SELL: 31, HOLD: 1429}, warnings: []}
operation:
  description: The backend's full operation object (C(GET /api/v1/operations/{id}) C(data)).
  returned: when the operation exists
  type: dict
request:
  description: The path and body of the start request that was (or in check mode would have been) sent.
  returned: when starting
  type: dict
  sample: {path: /trainings/start, body: {strategy_name: v3_e2e_test, symbols: [EURUSD], timeframes: [1h]}}
start_response:
  description: The backend's answer to the start request (it names the id C(task_id) for a training, C(operation_id) for a backtest).
  returned: when the module started an operation
  type: dict
  sample: {success: true, task_id: op_training_20261122_215501_ab12cd34, status: training_started}
cancel:
  description: The backend's answer to the cancellation (C(data) of C(DELETE /api/v1/operations/{id})).
  returned: when the module cancelled the operation
  type: dict
  sample: {success: true, operation_id: op_training_20261122_215501_ab12cd34, status: cancelled, remote_cancelled: true}
retry_log:
  description: One line per HTTP request that had to be retried.
  returned: always
  type: list
  elements: str
  sample: []
"""

import datetime
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ktrdr.ops.plugins.module_utils._api import (
    KtrdrAPIError,
    api_argument_spec,
    client_from_module,
    quote_segment,
)
from ansible_collections.ktrdr.ops.plugins.module_utils._operation import (
    TERMINAL,
    EndEstimate,
    check_date,
    check_strategy_name,
    describe_progress,
    duration_seconds,
    progress_of,
    start_request,
    started_id,
    summarize,
)
from ansible_collections.ktrdr.ops.plugins.module_utils._wait import PollSchedule

# ktrdr's worker inserts the row of a new operation asynchronously: a fresh id can be 404 briefly.
NEW_ID_GRACE = 20.0
# The first look after the start: a backtest can end in a fraction of a second.
FIRST_LOOK = 0.5
PROGRESS_LOG_LIMIT = 200
TRAINING_ONLY = ("symbols", "timeframes")
BACKTEST_ONLY = ("symbol", "timeframe", "model_path", "initial_capital", "commission", "slippage")


class OperationRunner:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.client = client_from_module(module)
        self.result = dict(changed=False, started=False, progress_log=[], retry_log=self.client.retry_log)
        self.operation_id = self.p["operation_id"]
        self.op = None
        self._t0 = time.monotonic()
        self._last_sample = None
        self._end = EndEstimate()

    # -- plumbing -------------------------------------------------------------------------------
    def fail(self, msg, **extra):
        self._fill_from_op()
        self.result.update(extra)
        self.module.fail_json(msg=msg, **self.result)

    def _fill_from_op(self):
        if self.operation_id:
            self.result["operation_id"] = self.operation_id
        if self.op:
            self.result.update(
                status=self.op.get("status"),
                progress=self.op.get("progress") or {},
                duration_seconds=duration_seconds(self.op),
                result_summary=self.op.get("result_summary"),
                operation=self.op,
            )

    def op_path(self):
        return "/operations/%s" % quote_segment(self.operation_id)

    def fetch(self, allow_missing_for=0.0):
        """GET the operation; a 404 is waited through for ``allow_missing_for`` seconds."""
        deadline = time.monotonic() + allow_missing_for
        delay = 0.5
        while True:
            try:
                body = self.client.get(self.op_path())
            except KtrdrAPIError as exc:
                if exc.status == 404 and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 1.5, 3.0)
                    continue
                if exc.status == 404:
                    self.fail(
                        "Operation %s not found at %s%s: %s"
                        % (self.operation_id, self.client.url(self.op_path()),
                           " (started %.0fs ago and never appeared)" % allow_missing_for if allow_missing_for else
                           " (check the id; ids look like op_training_20250101_120000_ab12cd34)",
                           exc.detail or "HTTP 404"),
                        **exc.as_result()
                    )
                self.fail("Could not read operation %s: %s" % (self.operation_id, exc), **exc.as_result())
            data = body.get("data") if isinstance(body, dict) and "data" in body else body
            if not isinstance(data, dict) or "status" not in data:
                self.fail("GET %s returned no operation object: %r" % (self.client.url(self.op_path()), body))
            self.op = data
            self.sample()
            return data

    def sample(self):
        pct, step = progress_of(self.op)
        self._end.add(time.monotonic(), pct)
        key = (self.op.get("status"), pct, step)
        if key == self._last_sample:
            return False
        self._last_sample = key
        entry = dict(
            elapsed=round(time.monotonic() - self._t0, 1),
            time=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
            status=key[0],
            percentage=pct,
            step=step,
        )
        log = self.result["progress_log"]
        if len(log) < PROGRESS_LOG_LIMIT:
            log.append(entry)
        else:
            log[-1] = entry  # keep the first samples and always the latest
        return True

    # -- actions ----------------------------------------------------------------------------------
    def start(self):
        path, body = start_request(self.p)
        self.result["request"] = dict(path=path, body=body)
        if self.module.check_mode:
            self.result["changed"] = True
            self.result["msg"] = "Would start a %s of %s (check mode)" % (self.p["operation_type"], self.p["strategy"])
            self.module.exit_json(**self.result)
        try:
            answer = self.client.post(path, json_body=body)
        except KtrdrAPIError as exc:
            self.fail("Could not start the %s of %s: %s" % (self.p["operation_type"], self.p["strategy"], exc), **exc.as_result())
        self.result["changed"] = True
        self.operation_id = started_id(answer)
        if not self.operation_id:
            self.fail("POST %s answered without an operation id (task_id/operation_id): %r" % (self.client.url(path), answer))
        self.result["started"] = True
        self.result["start_response"] = answer

    def wait(self):
        schedule = PollSchedule(self.p["poll_interval"], self.p["max_poll_interval"], self.p["timeout"], first=FIRST_LOOK)
        op = self.fetch(allow_missing_for=NEW_ID_GRACE if self.result["started"] else 0.0)
        while True:
            status = op.get("status")
            if status == "completed":
                return op
            if status == "failed":
                self.fail("Operation %s (%s) failed after %ss: %s"
                          % (self.operation_id, op.get("operation_type"), duration_seconds(op),
                             op.get("error_message") or "the backend gave no error message"))
            if status == "cancelled":
                self.fail("Operation %s (%s) was cancelled%s"
                          % (self.operation_id, op.get("operation_type"),
                             ": %s" % op["error_message"] if op.get("error_message") else ""))
            if schedule.expired():
                op = self.on_timeout(schedule)
                continue  # it ended while we cancelled: judge it like any other status
            # Near the end the progress rate predicts, look often: the wait ends within about
            # half a second of the operation instead of up to a whole grown delay later.
            time.sleep(schedule.next_delay(expected_in=self._end.expected_in(time.monotonic())))
            if self.fetch_and_moved():
                schedule.reset()
            op = self.op

    def fetch_and_moved(self):
        before = self._last_sample
        self.fetch()
        return self._last_sample != before

    def on_timeout(self, schedule):
        where = describe_progress(self.op)
        if self.p["cancel_on_timeout"]:
            answer = self.cancel_now("timeout of %ss reached (ktrdr.ops.operation)" % self.p["timeout"])
            if answer is None:
                return self.op
            self.result["changed"] = True
            self.result["cancel"] = answer
            self.fail("Timed out after %.0fs waiting for operation %s (last seen: %s); cancelled it as cancel_on_timeout asks"
                      % (schedule.elapsed(), self.operation_id, where))
        self.fail("Timed out after %.0fs waiting for operation %s (last seen: %s); it is still running: wait again with "
                  "operation_id=%s, or set cancel_on_timeout=true" % (schedule.elapsed(), self.operation_id, where, self.operation_id))

    def cancel_now(self, reason):
        body = {"reason": self.p["cancel_reason"] or reason}
        try:
            answer = self.client.delete(self.op_path(), json_body=body)
        except KtrdrAPIError as exc:
            if exc.status == 400:
                # Ended between our look and the cancel (ktrdr: 400 "already COMPLETED/FAILED/CANCELLED").
                self.fetch()
                return None
            self.fail("Could not cancel operation %s: %s" % (self.operation_id, exc), **exc.as_result())
        self.fetch()
        return answer.get("data") if isinstance(answer, dict) and "data" in answer else answer

    def cancel(self):
        op = self.fetch()
        status = op.get("status")
        if status == "cancelled":
            self.result["msg"] = "Operation %s is already cancelled" % self.operation_id
            return
        if status in TERMINAL:
            self.result["msg"] = "Operation %s already ended as %s; nothing to cancel" % (self.operation_id, status)
            self.module.warn(self.result["msg"])
            return
        self.result["changed"] = True
        if self.module.check_mode:
            self.result["msg"] = "Would cancel operation %s (%s) (check mode)" % (self.operation_id, describe_progress(op))
            return
        answer = self.cancel_now(None)
        if answer is None:
            self.result["changed"] = False
            self.result["msg"] = "Operation %s ended as %s before it could be cancelled" % (self.operation_id, self.op.get("status"))
            return
        self.result["cancel"] = answer
        self.result["msg"] = "Cancelled operation %s" % self.operation_id

    def finish(self, op):
        summary, warnings = summarize(op.get("operation_type") or self.p["operation_type"], op.get("result_summary"), op.get("warnings"))
        self.result["summary"] = summary
        for warning in warnings:
            self.module.warn(warning)
        if self.p["fail_on_no_trades"] and summary.get("trades") == 0:
            self.fail("Backtest %s completed with 0 trades and fail_on_no_trades is set" % self.operation_id)
        self.result["msg"] = "Operation %s completed in %ss" % (self.operation_id, duration_seconds(op))

    def run(self):
        state = self.p["state"]
        if state == "cancelled":
            self.cancel()
        else:
            if self.p["operation_type"]:
                self.start()
            if state == "completed":
                op = self.wait()
                self.finish(op)
            else:
                op = self.fetch(allow_missing_for=NEW_ID_GRACE if self.result["started"] else 0.0)
                self.result["msg"] = "Operation %s %s (%s)" % (
                    self.operation_id, "started" if self.result["started"] else "found", describe_progress(op))
        self._fill_from_op()
        self.module.exit_json(**self.result)


def validate(module):
    p = module.params
    errors = []
    if p["operation_type"]:
        if not p["strategy"]:
            errors.append("strategy is required to start a %s" % p["operation_type"])
        else:
            errors.append(check_strategy_name(p["strategy"]))
        wrong = TRAINING_ONLY if p["operation_type"] == "backtesting" else BACKTEST_ONLY
        given = [k for k in wrong if p[k] is not None]
        if given:
            errors.append("%s only appl%s to %s, not to a %s" % (
                ", ".join(given), "ies" if len(given) == 1 else "y",
                "trainings" if p["operation_type"] == "backtesting" else "backtests", p["operation_type"]))
        if p["operation_type"] == "backtesting":
            for opt in ("start_date", "end_date"):
                if not p[opt]:
                    errors.append("%s is required for a backtest (YYYY-MM-DD)" % opt)
            if not p["model_path"]:
                errors.append("model_path is required for a backtest: ktrdr's backtest worker fails the operation without one; "
                              "pass the training's summary.model_path or /app/models/<strategy name>/<timeframe>_latest")
            if p["initial_capital"] is not None and p["initial_capital"] <= 0:
                errors.append("initial_capital must be greater than 0, got %s" % p["initial_capital"])
    else:
        start_only = [k for k in ("strategy",) + TRAINING_ONLY + BACKTEST_ONLY + ("start_date", "end_date") if p[k] is not None]
        if start_only:
            errors.append("%s only apply when starting an operation (operation_type), not with operation_id" % ", ".join(start_only))
    for opt in ("start_date", "end_date"):
        errors.append(check_date(opt, p[opt]))
    if p["start_date"] and p["end_date"] and not any(errors) and p["start_date"] > p["end_date"]:
        errors.append("start_date %s is after end_date %s" % (p["start_date"], p["end_date"]))
    for opt in ("timeout", "poll_interval", "max_poll_interval"):
        if p[opt] <= 0:
            errors.append("%s must be a positive number of seconds, got %s" % (opt, p[opt]))
    errors = [e for e in errors if e]
    if errors:
        module.fail_json(msg="; ".join(errors))


def main():
    argument_spec = api_argument_spec()
    argument_spec.update(
        operation_type=dict(type="str", choices=["training", "backtesting"]),
        operation_id=dict(type="str"),
        state=dict(type="str", default="completed", choices=["completed", "started", "cancelled"]),
        strategy=dict(type="str"),
        symbols=dict(type="list", elements="str"),
        timeframes=dict(type="list", elements="str"),
        symbol=dict(type="str"),
        timeframe=dict(type="str"),
        model_path=dict(type="str"),
        initial_capital=dict(type="float"),
        commission=dict(type="float"),
        slippage=dict(type="float"),
        start_date=dict(type="str"),
        end_date=dict(type="str"),
        timeout=dict(type="float", default=3600.0),
        poll_interval=dict(type="float", default=2.0),
        max_poll_interval=dict(type="float", default=30.0),
        cancel_on_timeout=dict(type="bool", default=False),
        cancel_reason=dict(type="str"),
        fail_on_no_trades=dict(type="bool", default=False),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("operation_type", "operation_id")],
        required_one_of=[("operation_type", "operation_id")],
        required_if=[("state", "cancelled", ("operation_id",))],
    )
    validate(module)
    OperationRunner(module).run()


if __name__ == "__main__":
    main()
