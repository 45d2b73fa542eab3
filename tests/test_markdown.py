from tagrank.evaluation.markdown import pct, replace_section, section, sections, table


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
