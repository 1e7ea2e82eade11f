"""Parse a Label Studio label config into what the models need.

Label Studio sends the project's XML config with ``/setup`` and ``/predict``.
Each control tag is parsed by the task type registered for it
(``backend/labelstudio/tasktypes/``: ``<Choices>``, ``<Number>`` and ``<Rating>``
over a text, an image or a table; ``<Labels>`` over a text).  Real configs mix
those with controls it does not predict (a ``<TextArea>`` comment,
``<RectangleLabels>``...):
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

from backend.labelstudio.tasktypes import BY_TAG, TASK_TYPES, Control, NotPredicted, control_from_dict
from backend.labelstudio.tasktypes.base import OBJECT_KINDS, ObjectTag, object_tag

#: Larger configs are refused before parsing (Label Studio's own templates are a few KB; 40,000 options fit).
MAX_CONFIG_BYTES = 2 * 2**20
#: Control tags that may come without ``toName`` (Label Studio's templates have ``<Rating>`` without one),
#: besides the task types' own tags (``BY_TAG``).
CONTROL_TAGS = frozenset({"TextArea", "Rating", "Number", "DateTime", "Taxonomy", "Ranker", "Pairwise"})
#: Why a control tag is not predicted, in the user's words.
WHY_IGNORED = {
    "TextArea": "free text is not predicted",
    "DateTime": "dates are not predicted",
    "HyperTextLabels": "span labels of a web page are located by XPath, not character offsets; "
                       "span labels are predicted with <Labels> over <Text>",
    "ParagraphLabels": "span labels of paragraphs are located by paragraph and offset, not character offsets; "
                       "span labels are predicted with <Labels> over <Text>",
    "Taxonomy": "taxonomies are not predicted",
    "Relations": "relations are not predicted",
}


class UnsupportedConfigError(ValueError):
    """The label config cannot be served; the message says what to change."""


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

    controls: tuple[Control, ...]
    config_hash: str
    ignored: tuple[IgnoredControl, ...] = ()
    #: Remote mode only (``parse_label_config(..., remote=True)``): no controls (the remote model predicts
    #: them all), and the object tag whose data the diversity geometry reads (``None``: no featurizer reads
    #: any of its objects; the queue is then ordered by the remote's uncertainty alone).
    remote: bool = False
    geometry: ObjectTag | None = None

    def control(self, name: str) -> Control:
        for c in self.controls:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def kind(self) -> str:
        """The kind of data every predicted control reads (``text``, ``image``, ``numbers``); in remote mode,
        the geometry object's (``text`` when there is none: nothing reads it)."""
        if self.controls:
            return self.controls[0].kind
        return self.geometry.kind if self.geometry else "text"

    def geometry_control(self) -> Control | None:
        """What the diversity geometry reads, as a control the featurizers' readers take: the first
        predicted control, or in remote mode a bare control named after the geometry object."""
        if self.controls:
            return self.controls[0]
        return Control(name=self.geometry.name, objects=(self.geometry,)) if self.geometry else None

    def task_types(self) -> dict[str, str]:
        """Control name -> the name of its task type (stored beside the models)."""
        return {c.name: c.task_type for c in self.controls}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LabelConfig":
        controls = tuple(control_from_dict(c) for c in d["controls"])
        ignored = tuple(IgnoredControl(**i) for i in d.get("ignored") or ())
        geometry = ObjectTag(**d["geometry"]) if d.get("geometry") else None
        return cls(controls=controls, config_hash=d["config_hash"], ignored=ignored,
                   remote=bool(d.get("remote")), geometry=geometry)


def config_hash(xml: str) -> str:
    """A short stable hash of the raw config, to notice edits cheaply (never fails, even on invalid text)."""
    return hashlib.sha256(xml.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def parse_label_config(xml: str, *, remote: bool = False) -> LabelConfig:
    """Parse a label config: the controls to predict, and the ignored ones with why.

    Parameters
    ----------
    xml : str
        The project's label config, as Label Studio sends it (``schema`` in
        ``/setup``, ``label_config`` in ``/predict``).
    remote : bool
        The project's model is another ML backend (``model: remote``): it
        predicts every control, so any valid config is served; the result
        has no controls, and ``geometry`` is the first object tag (in
        document order) of a kind a featurizer reads.

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
        if el.get("toName") is not None or ((el.tag in CONTROL_TAGS or el.tag in BY_TAG) and name):
            controls.append(el)
        elif name and (el.get("value") or "").startswith("$"):
            objects[name] = el

    if remote:
        geometry = next((object_tag(el) for el in objects.values() if el.tag in OBJECT_KINDS), None)
        return LabelConfig(controls=(), config_hash=config_hash(xml), remote=True, geometry=geometry)

    parsed: list[Control] = []
    ignored: list[IgnoredControl] = []
    names: set[str] = set()
    for el in controls:
        name = el.get("name") or ""
        try:
            task_type = BY_TAG.get(el.tag)
            if task_type is None:
                raise NotPredicted(WHY_IGNORED.get(el.tag, f"<{el.tag}> controls are not predicted"))
            if not name:
                raise NotPredicted("it has no name attribute")
            if name in names:
                raise NotPredicted(f"another <{el.tag}> has the same name")
            control = task_type.parse(el, objects)
            if parsed and control.kind != parsed[0].kind:
                raise NotPredicted(f"it reads {control.kind} while <{parsed[0].name}> reads {parsed[0].kind}; "
                                   "a project learns from one kind of data, and the first predicted control's wins")
            parsed.append(control)
            names.add(name)
        except NotPredicted as why:
            ignored.append(IgnoredControl(name=name, tag=el.tag, reason=str(why)))
    if not parsed:
        raise UnsupportedConfigError(_nothing_to_predict(ignored))
    return LabelConfig(controls=tuple(parsed), config_hash=config_hash(xml), ignored=tuple(ignored))


def _nothing_to_predict(ignored: list[IgnoredControl]) -> str:
    found = "; ".join(i.describe() for i in ignored[:10]) or "no control tag at all"
    supported = "; ".join(t.supported for t in TASK_TYPES.values())
    if len(ignored) > 10:
        found += f" (and {len(ignored) - 10} more)"
    return (
        f"nothing in this label config can be predicted. Found: {found}. This backend predicts {supported}. "
        "To use it, add a <Choices name=\"...\" toName=\"...\"> with at least two <Choice> options (or a "
        "<Number name=\"...\" toName=\"...\"> or <Rating name=\"...\" toName=\"...\">), bound to a <Text>, <HyperText>, "
        "<Paragraphs>, <Image>, <Table> or <TimeSeries> tag, or a <Labels name=\"...\" toName=\"...\"> with at "
        "least one <Label> over a <Text>; the other controls can stay (they are ignored)."
    )
