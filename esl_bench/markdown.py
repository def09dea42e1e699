"""Replace one marked section of a markdown file, so that each benchmark rewrites only its own table."""

from pathlib import Path

from esl_train.atomic import write_text


def replace_section(text: str, name: str, body: str) -> str:
    """`text` with the section between <!-- begin name --> and <!-- end name --> replaced (appended if absent)."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        return text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    return text.rstrip() + "\n\n" + block + "\n"


def write_section(path: Path, name: str, body: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n\nMeasured by the scripts in `bench/`.\n"
    write_text(path, replace_section(text, name, body))
