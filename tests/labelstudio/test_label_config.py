"""Label config parsing: what is served, and clear errors for what is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.labelstudio.label_config import LabelConfig, UnsupportedConfigError, parse_label_config


def test_single_choice_over_text():
    cfg = parse_label_config(
        '<View><Text name="t" value="$review"/>'
        '<Choices name="sentiment" toName="t"><Choice value="pos"/><Choice value="neg"/></Choices></View>'
    )
    (c,) = cfg.controls
    assert (c.name, c.labels, c.multiple, c.to_names) == ("sentiment", ("pos", "neg"), False, ("t",))
    assert c.objects[0].value_key == "review" and c.objects[0].tag == "Text"


def test_multiple_controls_and_object_kinds():
    cfg = parse_label_config(
        """<View>
          <Header value="Read it"/>
          <HyperText name="page" value="$html"/>
          <Paragraphs name="chat" value="$dialogue" nameKey="speaker" textKey="phrase"/>
          <Choices name="topic" toName="page" choice="multiple">
            <Choice value="sports"/><Choice value="politics" alias="pol"/><Choice value="tech"/>
          </Choices>
          <View><Choices name="tone" toName="chat" choice="single-radio">
            <Choice value="calm"/><Choice value="angry"/></Choices></View>
        </View>"""
    )
    topic, tone = cfg.controls
    assert topic.multiple and topic.labels == ("sports", "pol", "tech")
    assert topic.objects[0].tag == "HyperText"
    assert not tone.multiple and tone.objects[0].name_key == "speaker" and tone.objects[0].text_key == "phrase"


def test_round_trip_through_dict():
    cfg = parse_label_config(
        '<View><Text name="a" value="$a" valueType="url"/><Text name="b" value="$b"/>'
        '<Choices name="c" toName="a,b"><Choice value="x"/><Choice value="y"/></Choices></View>'
    )
    assert LabelConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.controls[0].to_names == ("a", "b") and cfg.controls[0].objects[0].is_url


@pytest.mark.parametrize(
    "xml, needle",
    [
        ("", "empty"),
        ("<View><Text name='t' value='$t'/>", "not valid XML"),
        ("<View><Text name='t' value='$t'/></View>", "Found: no control tag at all"),
        (
            '<View><HyperText name="t" value="$t"/><Labels name="ner" toName="t"><Label value="PER"/></Labels>'
            '<TextArea name="note" toName="t"/></View>',
            '<Labels name="ner">: it labels spans of <HyperText name="t">, which Label Studio locates by XPath '
            'positions in the page, not by character offsets into one text; span labels are predicted over <Text>; '
            '<TextArea name="note">: free text is not predicted',
        ),
        (
            '<View><Text name="t" value="$t"/><Choices name="c" toName="nowhere">'
            '<Choice value="a"/><Choice value="b"/></Choices></View>',
            'toName="nowhere" names no object tag',
        ),
        (
            '<View><Audio name="snd" value="$audio"/><Choices name="c" toName="snd">'
            '<Choice value="a"/><Choice value="b"/></Choices></View>',
            'it reads <Audio name="snd">; only <Text>, <HyperText>, <Paragraphs>, <Image>, <Table>, <TimeSeries> are read',
        ),
        (
            '<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice value="a"/></Choices></View>',
            "at least 2 <Choice> option(s) (got 1)",
        ),
        (
            '<View><Text name="t" value="$t"/><Choices name="c" toName="t" choice="several">'
            '<Choice value="a"/><Choice value="b"/></Choices></View>',
            'choice="several"',
        ),
        (
            '<View><Text name="t" value="$t"/><Choices name="c" toName="t" value="$options"/></View>',
            "dynamic choices",
        ),
        (
            '<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><View>&b;</View>',
            "not valid XML",
        ),
    ],
)
def test_unsupported_configs_name_the_problem(xml, needle):
    with pytest.raises(UnsupportedConfigError) as err:
        parse_label_config(xml)
    assert needle in str(err.value)
    if "valid XML" not in needle and needle != "empty":
        # Plainly: what was found, what is supported, what to do.
        assert "nothing in this label config can be predicted" in str(err.value)
        assert "This backend predicts <Choices> over <Text>, <HyperText> or <Paragraphs> (text classification), "\
            "<Image> (image classification)" in str(err.value)
        assert "To use it" in str(err.value)


def test_multiple_choice_accepts_a_single_option():
    cfg = parse_label_config(
        '<View><Text name="t" value="$t"/><Choices name="spam" toName="t" choice="multiple">'
        '<Choice value="spam"/></Choices></View>'
    )
    assert cfg.controls[0].labels == ("spam",)


CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "label-configs"


@pytest.mark.parametrize(
    "template, predicted, ignored",
    [
        ("text-classification", [("sentiment", ("Positive", "Negative", "Neutral"), False)], []),
        ("content-moderation",
         [("content_moderation", ("Toxic", "Severely Toxic", "Obscene", "Threat", "Insult", "Hate"), True)],
         [("TextArea", "comments", "free text is not predicted")]),
        # The stars are a number to predict: a rating from 1 to maxRating.
        ("sentiment-rating", [("sentiment", ("Positive", "Negative", "Neutral"), False),
                              ("rating", "rating", 1.0, 5.0, 1.0)], []),
        ("image-classification", [("choice", ("Adult content", "Weapons", "Violence"), False)], []),
        # Named entities: spans of the text (issue 17).
        ("named-entity-recognition", [("label", ("PER", "ORG", "LOC", "MISC"))], []),
    ],
)
def test_label_studio_templates_predict_what_they_can(template, predicted, ignored):
    """Label Studio's own templates: the supported controls are predicted, the rest listed with why."""
    cfg = parse_label_config((CONFIGS / f"{template}.xml").read_text())

    def described(c):
        if c.task_type == "number":
            return (c.name, c.result_kind, c.min, c.max, c.step)
        if c.task_type == "labels":
            return (c.name, c.labels)
        return (c.name, c.labels, c.multiple)

    assert [described(c) for c in cfg.controls] == predicted
    assert [(i.tag, i.name, i.reason) for i in cfg.ignored] == ignored
    assert LabelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "template, found",
    [
        ("audio-classification", '<Choices name="emotion">: it reads <Audio name="audio">'),
    ],
)
def test_templates_with_nothing_to_predict_are_refused_plainly(template, found):
    with pytest.raises(UnsupportedConfigError) as err:
        parse_label_config((CONFIGS / f"{template}.xml").read_text())
    assert f"Found: {found}" in str(err.value)


def test_an_unsupported_choices_never_blocks_a_supported_one():
    cfg = parse_label_config(
        '<View><Audio name="snd" value="$audio"/><Text name="t" value="$t"/>'
        '<Choices name="photo" toName="snd"><Choice value="a"/><Choice value="b"/></Choices>'
        '<Choices name="topic" toName="t"><Choice value="x"/><Choice value="y"/></Choices>'
        '<Choices name="topic" toName="t"><Choice value="z"/><Choice value="w"/></Choices>'
        '<Choices name="region" toName="t" perRegion="true"><Choice value="x"/><Choice value="y"/></Choices>'
        '<Rating name="stars" maxRating="5"/><Number name="n" toName="t"/><DateTime name="d" toName="t"/></View>'
    )
    assert [c.name for c in cfg.controls] == ["topic", "n"]  # a <Number> about the text is predicted
    assert [(i.tag, i.name) for i in cfg.ignored] == [
        ("Choices", "photo"), ("Choices", "topic"), ("Choices", "region"), ("Rating", "stars"), ("DateTime", "d")]
    assert "same name" in cfg.ignored[1].reason and "per-region" in cfg.ignored[2].reason
    assert "toName is empty" in cfg.ignored[3].reason


def test_a_project_learns_from_one_kind_of_data():
    cfg = parse_label_config(
        '<View><Image name="img" value="$image"/><Text name="t" value="$caption"/>'
        '<Choices name="photo" toName="img"><Choice value="a"/><Choice value="b"/></Choices>'
        '<Choices name="topic" toName="t"><Choice value="x"/><Choice value="y"/></Choices>'
        '<Choices name="both" toName="img,t"><Choice value="x"/><Choice value="y"/></Choices></View>'
    )
    assert [c.name for c in cfg.controls] == ["photo"] and cfg.kind == "image"
    assert cfg.controls[0].objects[0].value_key == "image"
    reasons = {i.name: i.reason for i in cfg.ignored}
    assert reasons["topic"].startswith("it reads text while <photo> reads image")
    assert reasons["both"] == "it reads image and text at once; bind it to one kind of data"


def test_a_table_is_read_as_numbers():
    cfg = parse_label_config('<View><Table name="row" value="$record"/>'
                             '<Choices name="risk" toName="row"><Choice value="low"/><Choice value="high"/></Choices></View>')
    assert cfg.kind == "numbers" and LabelConfig.from_dict(cfg.to_dict()) == cfg


def test_configs_stored_before_ignored_controls_existed_still_load():
    cfg = parse_label_config((CONFIGS / "text-classification.xml").read_text())
    old = cfg.to_dict()
    del old["ignored"]
    assert LabelConfig.from_dict(old) == cfg
