"""Parse a Label Studio label config into what the models need.

Label Studio sends the project's XML config with ``/setup`` and ``/predict``.
Only text classification is supported: ``<Choices>`` bound to ``<Text>``,
``<HyperText>`` or ``<Paragraphs>``.  Anything else is rejected here, at the
edge, with a message that names the offending tag, because Label Studio shows
that message to the user who connected the backend.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

SUPPORTED_OBJECTS = ("Text", "HyperText", "Paragraphs")
CHOICE_MODES = {"single": False, "single-radio": False, "multiple": True}


class UnsupportedConfigError(ValueError):
    """The label config cannot be served; the message says what to change."""


@dataclass(frozen=True)
class ObjectTag:
    """An object tag (where the text lives in ``task.data``)."""

    name: str
    tag: str
    value_key: str
    is_url: bool = False
    name_key: str = "author"
    text_key: str = "text"


@dataclass(frozen=True)
class ChoicesControl:
    """One ``<Choices>`` block: one model is trained per control."""

    name: str
    labels: tuple[str, ...]
    multiple: bool
    objects: tuple[ObjectTag, ...]

    @property
    def to_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.objects)


@dataclass(frozen=True)
class LabelConfig:
    """The supported part of a label config, plus a hash to detect changes."""

    controls: tuple[ChoicesControl, ...]
    config_hash: str

    def control(self, name: str) -> ChoicesControl:
        for c in self.controls:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LabelConfig":
        controls = tuple(
            ChoicesControl(
                name=c["name"],
                labels=tuple(c["labels"]),
                multiple=bool(c["multiple"]),
                objects=tuple(ObjectTag(**o) for o in c["objects"]),
            )
            for c in d["controls"]
        )
        return cls(controls=controls, config_hash=d["config_hash"])


def config_hash(xml: str) -> str:
    """A short stable hash of the raw config, to notice edits cheaply."""
    return hashlib.sha256(xml.encode("utf-8")).hexdigest()[:16]


def _describe(el: Element) -> str:
    name = el.get("name")
    return f"<{el.tag} name=\"{name}\">" if name else f"<{el.tag}>"


def _object_tag(el: Element) -> ObjectTag:
    value = (el.get("value") or "").strip()
    if not value.startswith("$") or len(value) < 2:
        raise UnsupportedConfigError(
            f"{_describe(el)} must take its text from the task data, e.g. value=\"$text\" (got value=\"{value}\")"
        )
    return ObjectTag(
        name=el.get("name", ""),
        tag=el.tag,
        value_key=value[1:],
        is_url=(el.get("valueType") or "").lower() == "url",
        name_key=el.get("nameKey") or "author",
        text_key=el.get("textKey") or "text",
    )


def _choice_labels(el: Element) -> tuple[str, ...]:
    labels: list[str] = []
    for child in el.iter("Choice"):
        label = child.get("alias") or child.get("value")
        if label and label not in labels:
            labels.append(label)
    return tuple(labels)


def parse_label_config(xml: str) -> LabelConfig:
    """Parse and validate a label config.

    Parameters
    ----------
    xml : str
        The project's label config, as Label Studio sends it (``schema`` in
        ``/setup``, ``label_config`` in ``/predict``).

    Returns
    -------
    LabelConfig
        One ``ChoicesControl`` per ``<Choices>`` block, in document order.

    Raises
    ------
    UnsupportedConfigError
        Not XML, no ``<Choices>``, other control tags, a ``toName`` that points
        nowhere, a ``<Choices>`` bound to an object other than text, or a
        ``<Choices>`` without options.  The message names the tag.
    """
    if not xml or not xml.strip():
        raise UnsupportedConfigError("the label config is empty")
    try:
        root = SafeET.fromstring(xml)
    except (SafeET.ParseError, DefusedXmlException) as exc:
        raise UnsupportedConfigError(f"the label config is not valid XML: {exc}") from None

    objects: dict[str, Element] = {}
    controls: list[Element] = []
    for el in root.iter():
        name = el.get("name")
        if el.get("toName") is not None:
            controls.append(el)
        elif name and (el.get("value") or "").startswith("$"):
            objects[name] = el

    unsupported = [c for c in controls if c.tag != "Choices"]
    if unsupported:
        listed = ", ".join(_describe(c) for c in unsupported)
        raise UnsupportedConfigError(
            f"unsupported control tag(s): {listed}. This backend predicts <Choices> "
            f"over {', '.join(SUPPORTED_OBJECTS)} (text classification) only."
        )
    if not controls:
        raise UnsupportedConfigError(
            "the label config has no <Choices> control. This backend predicts <Choices> "
            f"over {', '.join(SUPPORTED_OBJECTS)} (text classification) only."
        )

    parsed: list[ChoicesControl] = []
    for el in controls:
        desc = _describe(el)
        if not el.get("name"):
            raise UnsupportedConfigError("a <Choices> control has no name attribute")
        if (el.get("value") or "").startswith("$"):
            raise UnsupportedConfigError(f"{desc} takes its options from task data (dynamic choices); not supported")
        mode = (el.get("choice") or "single").lower()
        if mode not in CHOICE_MODES:
            raise UnsupportedConfigError(
                f"{desc} has choice=\"{mode}\"; expected one of {', '.join(CHOICE_MODES)}"
            )
        bound: list[ObjectTag] = []
        for to_name in (n.strip() for n in el.get("toName", "").split(",")):
            if not to_name:
                continue
            if to_name not in objects:
                raise UnsupportedConfigError(
                    f"{desc} has toName=\"{to_name}\", but no object tag is named \"{to_name}\""
                )
            obj = objects[to_name]
            if obj.tag not in SUPPORTED_OBJECTS:
                raise UnsupportedConfigError(
                    f"{desc} is bound to {_describe(obj)}; supported objects: {', '.join(SUPPORTED_OBJECTS)}"
                )
            bound.append(_object_tag(obj))
        if not bound:
            raise UnsupportedConfigError(f"{desc} has an empty toName")
        labels = _choice_labels(el)
        needed = 1 if CHOICE_MODES[mode] else 2
        if len(labels) < needed:
            raise UnsupportedConfigError(
                f"{desc} needs at least {needed} <Choice> option(s) (got {len(labels)})"
            )
        parsed.append(
            ChoicesControl(name=el.get("name", ""), labels=labels, multiple=CHOICE_MODES[mode], objects=tuple(bound))
        )
    names = [c.name for c in parsed]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UnsupportedConfigError(f"several <Choices> share the name {', '.join(dupes)}")
    return LabelConfig(controls=tuple(parsed), config_hash=config_hash(xml))
