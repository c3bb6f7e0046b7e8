"""Progress where no terminal is attached: whole lines, throttled, never a carriage-return stream."""
import io

from reasonbridge.progress import LineProgress, progress_bar


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_a_file_gets_whole_lines_not_redraws(monkeypatch):
    monkeypatch.setenv("REASONBRIDGE_PROGRESS_INTERVAL", "1000")  # throttled: only the first and the last line
    out = io.StringIO()
    bar = progress_bar(total=5000, desc="train", stream=out)
    assert isinstance(bar, LineProgress)
    for _ in range(5000):
        bar.update(1)
    bar.close()
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert 2 <= len(lines) <= 3, lines  # the start, maybe one forced by maxinterval, the end
    assert lines[0].startswith("train:") and "0/5000" in lines[0]
    assert "5000/5000" in lines[-1]


def test_every_interval_a_line(monkeypatch):
    monkeypatch.setenv("REASONBRIDGE_PROGRESS_INTERVAL", "0")
    out = io.StringIO()
    bar = progress_bar(total=3, desc="gen", stream=out)
    for _ in range(3):
        bar.update(1)
    bar.close()
    assert [line.split("|")[0].strip() for line in out.getvalue().splitlines()][-1].startswith("gen: 100%")
    assert len(out.getvalue().splitlines()) >= 4  # 0, 1, 2, 3 of 3


def test_a_terminal_keeps_the_bar_and_disabled_prints_nothing():
    tty = _Tty()
    bar = progress_bar(total=3, desc="gen", stream=tty)
    assert not isinstance(bar, LineProgress)
    bar.close()
    quiet = io.StringIO()
    bar = progress_bar(total=3, desc="gen", stream=quiet, disable=True)
    bar.update(3)
    bar.close()
    assert quiet.getvalue() == ""
