"""Replace one marked section of a markdown file, so that each benchmark rewrites only its own table."""

from pathlib import Path

from esl_train.atomic import write_text


def write_section(path: Path, name: str, body: str) -> None:
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n\nMeasured by the scripts in `bench/`.\n"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    write_text(path, text)
