"""Parse a Label Studio label config into what the models need.

Label Studio sends the project's XML config with ``/setup`` and ``/predict``.
The backend predicts text classification: ``<Choices>`` bound to ``<Text>``,
``<HyperText>`` or ``<Paragraphs>``.  Real configs mix those with controls it
does not predict (a ``<TextArea>`` comment, a ``<Rating>``, ``<Labels>``...):
those are *ignored*, each with the reason, and never block the supported
ones.  Only a config with nothing to predict is refused, with a message that
says what was found, what is supported and what to change.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

SUPPORTED_OBJECTS = ("Text", "HyperText", "Paragraphs")
CHOICE_MODES = {"single": False, "single-radio": False, "multiple": True}
#: Larger configs are refused before parsing (Label Studio's own templates are a few KB; 40,000 options fit).
MAX_CONFIG_BYTES = 2 * 2**20
SUPPORTED = "<Choices> over <Text>, <HyperText> or <Paragraphs> (text classification)"
#: Control tags that may come without ``toName`` (Label Studio's templates have ``<Rating>`` without one).
CONTROL_TAGS = frozenset({"Choices", "TextArea", "Rating", "Number", "DateTime", "Taxonomy", "Ranker", "Pairwise"})
#: Why a control tag is not predicted, in the user's words.
WHY_IGNORED = {
    "TextArea": "free text is not predicted",
    "Rating": "ratings are not predicted",
    "Number": "numbers are not predicted",
    "DateTime": "dates are not predicted",
    "Labels": "span labels (named entities) are not predicted yet",
    "HyperTextLabels": "span labels are not predicted yet",
    "ParagraphLabels": "span labels are not predicted yet",
    "Taxonomy": "taxonomies are not predicted",
    "Relations": "relations are not predicted",
}


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
class IgnoredControl:
    """A control tag the backend does not predict, and why (shown on the dashboard and in ``/status``)."""

    name: str
    tag: str
    reason: str

    def describe(self) -> str:
        return f"<{self.tag} name=\"{self.name}\">: {self.reason}"


@dataclass(frozen=True)
class LabelConfig:
    """The supported part of a label config, what was ignored, and a hash to detect changes."""

    controls: tuple[ChoicesControl, ...]
    config_hash: str
    ignored: tuple[IgnoredControl, ...] = ()

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
        ignored = tuple(IgnoredControl(**i) for i in d.get("ignored") or ())
        return cls(controls=controls, config_hash=d["config_hash"], ignored=ignored)


def config_hash(xml: str) -> str:
    """A short stable hash of the raw config, to notice edits cheaply (never fails, even on invalid text)."""
    return hashlib.sha256(xml.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _describe(el: Element) -> str:
    name = el.get("name")
    return f"<{el.tag} name=\"{name}\">" if name else f"<{el.tag}>"


class _Ignore(Exception):
    """This control cannot be predicted; the message is the reason shown to the user."""


def _object_tag(el: Element) -> ObjectTag:
    value = (el.get("value") or "").strip()
    if not value.startswith("$") or len(value) < 2:
        raise _Ignore(
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
    """Options in document order, each once (a dict keeps order: linear in the options)."""
    labels: dict[str, None] = {}
    for child in el.iter("Choice"):
        label = child.get("alias") or child.get("value")
        if label:
            labels.setdefault(label, None)
    return tuple(labels)


def _choices_control(el: Element, objects: dict[str, Element]) -> ChoicesControl:
    """One supported ``<Choices>``; raises ``_Ignore`` with the reason otherwise."""
    if (el.get("value") or "").startswith("$"):
        raise _Ignore("its options come from task data (dynamic choices), which is not supported")
    if (el.get("perRegion") or "").lower() == "true":
        raise _Ignore("per-region choices are not predicted (only choices about the whole task)")
    mode = (el.get("choice") or "single").lower()
    if mode not in CHOICE_MODES:
        raise _Ignore(f"choice=\"{mode}\" is not one of {', '.join(CHOICE_MODES)}")
    bound: list[ObjectTag] = []
    for to_name in (n.strip() for n in el.get("toName", "").split(",")):
        if not to_name:
            continue
        if to_name not in objects:
            raise _Ignore(f"toName=\"{to_name}\" names no object tag")
        obj = objects[to_name]
        if obj.tag not in SUPPORTED_OBJECTS:
            raise _Ignore(f"it classifies {_describe(obj)}; only text objects ({', '.join(SUPPORTED_OBJECTS)}) "
                          "are classified")
        bound.append(_object_tag(obj))
    if not bound:
        raise _Ignore("its toName is empty")
    labels = _choice_labels(el)
    needed = 1 if CHOICE_MODES[mode] else 2
    if len(labels) < needed:
        raise _Ignore(f"it needs at least {needed} <Choice> option(s) (got {len(labels)})")
    return ChoicesControl(name=el.get("name", ""), labels=labels, multiple=CHOICE_MODES[mode], objects=tuple(bound))


def parse_label_config(xml: str) -> LabelConfig:
    """Parse a label config: the controls to predict, and the ignored ones with why.

    Parameters
    ----------
    xml : str
        The project's label config, as Label Studio sends it (``schema`` in
        ``/setup``, ``label_config`` in ``/predict``).

    Returns
    -------
    LabelConfig
        One ``ChoicesControl`` per supported ``<Choices>`` block, in document
        order; every other control in ``ignored``, with the reason.

    Raises
    ------
    UnsupportedConfigError
        Empty, over ``MAX_CONFIG_BYTES``, not valid Unicode or not XML, or
        nothing in it can be predicted.  The message lists what was found,
        what is supported and what to change.

    Notes
    -----
    Linear in the size of the config (one pass over the elements; options
    and names deduplicated through dicts and sets), so the limit, not the
    parser, bounds the time.
    """
    if not xml or not xml.strip():
        raise UnsupportedConfigError("the label config is empty")
    try:
        size = len(xml.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise UnsupportedConfigError(
            f"the label config holds text that is not valid Unicode ({xml[exc.start:exc.end]!r} at character "
            f"{exc.start}, {exc.reason}); remove that character in Label Studio's label config editor"
        ) from None
    if size > MAX_CONFIG_BYTES:
        raise UnsupportedConfigError(
            f"the label config is {size / 2**20:.1f} MB; the limit is {MAX_CONFIG_BYTES // 2**20} MB. "
            "Very long option lists belong in a <Taxonomy> or in dynamic choices, not in the config"
        )
    try:
        root = SafeET.fromstring(xml)
    except (SafeET.ParseError, DefusedXmlException) as exc:
        raise UnsupportedConfigError(f"the label config is not valid XML: {exc}") from None

    objects: dict[str, Element] = {}
    controls: list[Element] = []
    for el in root.iter():
        name = el.get("name")
        if el.get("toName") is not None or (el.tag in CONTROL_TAGS and name):
            controls.append(el)
        elif name and (el.get("value") or "").startswith("$"):
            objects[name] = el

    parsed: list[ChoicesControl] = []
    ignored: list[IgnoredControl] = []
    names: set[str] = set()
    for el in controls:
        name = el.get("name") or ""
        try:
            if el.tag != "Choices":
                raise _Ignore(WHY_IGNORED.get(el.tag, f"<{el.tag}> controls are not predicted"))
            if not name:
                raise _Ignore("it has no name attribute")
            if name in names:
                raise _Ignore("another <Choices> has the same name")
            parsed.append(_choices_control(el, objects))
            names.add(name)
        except _Ignore as why:
            ignored.append(IgnoredControl(name=name, tag=el.tag, reason=str(why)))
    if not parsed:
        raise UnsupportedConfigError(_nothing_to_predict(ignored))
    return LabelConfig(controls=tuple(parsed), config_hash=config_hash(xml), ignored=tuple(ignored))


def _nothing_to_predict(ignored: list[IgnoredControl]) -> str:
    found = "; ".join(i.describe() for i in ignored[:10]) or "no control tag at all"
    if len(ignored) > 10:
        found += f" (and {len(ignored) - 10} more)"
    return (
        f"nothing in this label config can be predicted. Found: {found}. This backend predicts {SUPPORTED}. "
        "To use it, classify text: add a <Choices name=\"...\" toName=\"...\"> with at least two <Choice> "
        "options, bound to a <Text>, <HyperText> or <Paragraphs> tag; the other controls can stay (they are ignored)."
    )
