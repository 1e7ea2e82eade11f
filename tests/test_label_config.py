"""Label config parsing: what is served, and clear errors for what is not."""

from __future__ import annotations

import pytest

from backend.label_config import LabelConfig, UnsupportedConfigError, parse_label_config


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
        ("<View><Text name='t' value='$t'/></View>", "no <Choices>"),
        (
            '<View><Text name="t" value="$t"/><Labels name="ner" toName="t"><Label value="PER"/></Labels>'
            '<TextArea name="note" toName="t"/></View>',
            '<Labels name="ner">, <TextArea name="note">',
        ),
        (
            '<View><Text name="t" value="$t"/><Choices name="c" toName="nowhere">'
            '<Choice value="a"/><Choice value="b"/></Choices></View>',
            'toName="nowhere", but no object tag is named "nowhere"',
        ),
        (
            '<View><Image name="img" value="$image"/><Choices name="c" toName="img">'
            '<Choice value="a"/><Choice value="b"/></Choices></View>',
            'bound to <Image name="img">',
        ),
        (
            '<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice value="a"/></Choices></View>',
            "at least 2 <Choice>",
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


def test_multiple_choice_accepts_a_single_option():
    cfg = parse_label_config(
        '<View><Text name="t" value="$t"/><Choices name="spam" toName="t" choice="multiple">'
        '<Choice value="spam"/></Choices></View>'
    )
    assert cfg.controls[0].labels == ("spam",)
