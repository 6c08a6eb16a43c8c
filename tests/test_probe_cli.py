"""``initcheck probe`` on the command line: formats, exit codes, the plot, the coord check, bad input."""

from __future__ import annotations

import json
import os

import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from initcheck.cli import main  # noqa: E402

from _probe_nets import relu_mlp  # noqa: E402

TESTS = os.path.dirname(os.path.abspath(__file__))
FACTORY = f"""
import sys
sys.path.insert(0, {TESTS!r})
from _probe_nets import relu_mlp, sp_mlp


def mlp():
    return relu_mlp(depth=8, width=64)
"""


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "nets.py").write_text(FACTORY)
    torch.save(relu_mlp(depth=8, width=64).state_dict(), tmp_path / "mlp.pt")
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_table_names_the_vanishing_signal_and_fails(files):
    res = invoke("probe", str(files / "mlp.pt"), "--model", str(files / "nets.py") + ":mlp")
    assert res.exit_code == 1
    assert "IC401" in res.output and "scale its weights by" in res.output
    assert "predicted" in res.output.splitlines()[0]  # the static prediction stands beside the measurement


def test_json_has_every_measurement(files, tmp_path):
    out = tmp_path / "probe.json"
    res = invoke("probe", str(files / "mlp.pt"), "--model", str(files / "nets.py") + ":mlp", "--format", "json",
                 "-o", str(out), "--fail-on", "never")
    assert res.exit_code == 0
    doc = json.loads(out.read_text())
    layers = doc["probe"]["layers"]
    assert [lp["name"] for lp in layers] == [str(i) for i in range(0, 16, 2)]
    assert all(lp["out_rms"] > 0 and lp["grad_out_rms"] > 0 and lp["update_ratio"] > 0 for lp in layers)
    assert {f["rule"] for f in doc["findings"]} >= {"IC401", "IC403"}


def test_plot_is_written(files, tmp_path):
    pytest.importorskip("matplotlib")
    png, page = tmp_path / "probe.png", tmp_path / "probe.html"
    res = invoke("probe", str(files / "mlp.pt"), "--model", str(files / "nets.py") + ":mlp", "--plot", str(png),
                 "--html", str(page))
    assert res.exit_code == 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert "data:image/png;base64," in text and "IC401" in text


def test_coord_check_on_the_command_line(files):
    res = invoke("probe", "--model", str(files / "nets.py") + ":sp_mlp", "--widths", "64,128,256")
    assert res.exit_code == 1 and "IC408" in res.output and "readout" in res.output


@pytest.mark.parametrize("args, message", [
    (["--widths", "64"], "at least two different"),
    (["--widths", "64,abc"], "comma-separated integers"),
])
def test_bad_widths_are_one_line_and_exit_2(files, args, message):
    res = CliRunner().invoke(main, ["probe", "--model", str(files / "nets.py") + ":sp_mlp", *args])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in res.output


def test_a_tensor_file_without_its_architecture_is_refused(files):
    from safetensors.torch import save_file

    save_file(relu_mlp(depth=2, width=8).state_dict(), str(files / "w.safetensors"))
    res = CliRunner().invoke(main, ["probe", str(files / "w.safetensors")])
    assert res.exit_code == 2 and "--model" in res.output


def test_probe_rules_explain_themselves():
    import initcheck.rules.probe  # noqa: F401  (registers IC4xx until the registry imports it)

    res = invoke("explain", "IC401")
    assert res.exit_code == 0 and "√2.5" in res.output and "sampling" in res.output
