"""initcheck.testing.assert_init_ok: passes on a healthy model, fails with the concise report otherwise."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from initcheck.errors import InitcheckError
from initcheck.report import Report
from initcheck.testing import assert_init_ok


def net(zero=(), nan=()):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    for layer in m:
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    with torch.no_grad():
        for i in zero:
            m[i].weight.zero_()
        for i in nan:
            m[i].weight[0, 0] = float("nan")
    return m


def test_passes_and_returns_the_report():
    report = assert_init_ok(net(), select=["IC00"])
    assert isinstance(report, Report) and report.findings == []


def test_fails_with_the_concise_report():
    with pytest.raises(AssertionError) as err:
        assert_init_ok(net(zero=(2,), nan=(0,)), select=["IC00"])
    lines = str(err.value).splitlines()
    assert lines[0] == "initcheck: 2 findings at or above 'error' in <Sequential>:"
    assert lines[1] == "<Sequential>:0: IC001 [error] 0.weight has 1 NaN and 0 Inf of 2048 values"
    assert lines[2] == "<Sequential>:2: IC002 [error] 2.weight is all zeros, shape (64, 64)"
    assert lines[3] == "Found 2 errors, 0 warnings, 0 infos in 1 model."


def test_ignore_select_and_per_layer_ignores():
    bad = net(zero=(2,))
    assert_init_ok(bad, select=["IC00"], ignore=["IC002"])
    assert_init_ok(bad, select=["IC00"], ignore="IC002")
    assert_init_ok(bad, select=["IC00"], per_layer_ignores={"2": ["IC002"]})
    with pytest.raises(AssertionError):
        assert_init_ok(bad, select=["IC00"], per_layer_ignores={"4": ["IC002"]})


def test_fail_on_levels():
    # a zero output head is deliberate: IC002 at info, which fails only with fail_on="info"
    head = net(zero=(4,))
    report = assert_init_ok(head, select=["IC002"])
    assert [(f.rule, f.severity) for f in report.findings] == [("IC002", "info")]
    assert_init_ok(head, select=["IC002"], fail_on="warning")
    with pytest.raises(AssertionError, match=r"1 finding at or above 'info'.*\n.*IC002 \[info\]"):
        assert_init_ok(head, select=["IC002"], fail_on="info")
    with pytest.raises(ValueError):
        assert_init_ok(head, fail_on="never-ever")


def test_unknown_codes_are_errors_not_silent():
    with pytest.raises(InitcheckError, match="IC999"):
        assert_init_ok(net(), ignore=["IC999"])
    with pytest.raises(InitcheckError, match="IC77"):
        assert_init_ok(net(), per_layer_ignores={"fc": ["IC77"]})


def test_works_on_a_state_dict_and_a_path(tmp_path):
    bad = net(zero=(2,))
    with pytest.raises(AssertionError, match=r"<state_dict>:2: IC002"):
        assert_init_ok(bad.state_dict(), select=["IC00"])
    torch.save(bad.state_dict(), tmp_path / "m.pt")
    with pytest.raises(AssertionError, match=r"m\.pt:2: IC002"):
        assert_init_ok(str(tmp_path / "m.pt"), select=["IC00"])
