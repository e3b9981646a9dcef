"""UNet shapes and safe checkpoints."""

from __future__ import annotations

import pytest
import torch

from hipseg.core.errors import InputError
from hipseg.models import UNet2D, load_state_dict, save_state_dict


def test_unet_output_shape_and_size_check():
    net = UNet2D(1, 6, base_width=4, depth=3)
    assert net(torch.zeros(2, 1, 32, 40)).shape == (2, 6, 32, 40)
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.zeros(1, 1, 30, 32))


def test_state_dict_round_trip(tmp_path):
    net = UNet2D(1, 3, base_width=4, depth=2)
    save_state_dict(net.state_dict(), tmp_path / "m.pt")
    loaded = load_state_dict(tmp_path / "m.pt")
    for key, value in net.state_dict().items():
        torch.testing.assert_close(loaded[key], value)


class _RunsCode:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_checkpoint_that_runs_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"weights": torch.zeros(1), "payload": _RunsCode()}, tmp_path / "evil.pt")
    assert not (tmp_path / "PWNED").exists()
    with pytest.raises(InputError, match="refused"):
        load_state_dict(tmp_path / "evil.pt")
    assert not (tmp_path / "PWNED").exists()


def test_truncated_checkpoint(tmp_path):
    save_state_dict({"w": torch.zeros(100)}, tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "m.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="unreadable or truncated"):
        load_state_dict(tmp_path / "m.pt")
