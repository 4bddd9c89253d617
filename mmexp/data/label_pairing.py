"""Labels belong to the model: the classes of a manifest scored by a trained model, against its label map.

A checkpoint only knows the classes it was trained on. Evaluating it on rows labelled with other classes gives
meaningless metrics (eval refuses); predicting on them is allowed (the predictions stand), but their label
column cannot be compared with the predictions, which a user should hear before reading predictions.csv.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mmexp.data.labels import sorted_labels

SHOWN = 8  # classes named per side; the rest counted


def shown_classes(names: Sequence[str]) -> str:
    """``a, b, c (+5 more)``: a class set in one short line."""
    head = ", ".join(names[:SHOWN])
    return head + (f" (+{len(names) - SHOWN} more)" if len(names) > SHOWN else "") if names else "none"


def unknown_classes(found: Iterable[str], known: Sequence[str], *, source: object) -> str | None:
    """One line naming both class sets when ``found`` (a manifest's classes) holds some not in ``known`` (the
    checkpoint's label map); None when every class is known."""
    found = sorted_labels(found)
    unknown = [name for name in found if name not in set(known)]
    if not unknown:
        return None
    shared = len(found) - len(unknown)
    how = "share no class with" if not shared else f"hold {len(unknown)} class(es) not in"
    return (
        f"data: the labels of {source} {how} the checkpoint's label map: unknown {shown_classes(unknown)}; "
        f"checkpoint {shown_classes(list(known))}"
    )
