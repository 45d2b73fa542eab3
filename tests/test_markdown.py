from tagrank.evaluation.markdown import pct, replace_section, section, sections, table, write_section


def test_table_and_pct():
    assert table(["a", "b"], [[1, "x"]]) == "| a | b |\n|---|---|\n| 1 | x |"
    assert pct(0.1234) == "12.3" and pct(float("nan")) == "n/a" and pct(None) == "n/a"


def test_sections_are_replaced_in_place_or_appended():
    doc = "# Title\n\n" + section("one", "first") + "\ntail\n"
    assert sections(doc) == {"one": "<!-- begin one -->\nfirst\n<!-- end one -->\n"}
    replaced = replace_section(doc, "one", "second")
    assert replaced == "# Title\n\n<!-- begin one -->\nsecond\n<!-- end one -->\n\ntail\n"
    appended = replace_section(replaced, "two", "x")
    assert appended.endswith("tail\n\n<!-- begin two -->\nx\n<!-- end two -->\n")
    assert set(sections(appended)) == {"one", "two"}


def test_a_benchmark_section_says_what_wrote_it_and_is_rewritten_whole(tmp_path):
    doc = tmp_path / "B.md"
    doc.write_text("# B\n\n" + section("other", "keep") , encoding="utf-8")
    write_section(doc, "speed", "## Speed", "python scripts/x.py", 90, "Read it so.", "| a |\n|---|")
    write_section(doc, "speed", "## Speed", "python scripts/x.py --fast", 30, "Read it so.", "| b |\n|---|")
    text = doc.read_text(encoding="utf-8")
    speed = sections(text)["speed"]
    assert "`python scripts/x.py --fast`" in speed and "Wall time: 0.5 min" in speed and "| b |" in speed
    assert "| a |" not in text and "keep" in sections(text)["other"]
