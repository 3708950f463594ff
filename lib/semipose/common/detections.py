"""One entry of a COCO detection-results json (``TEST.COCO_BBOX_FILE``), read the same way by the
COCO dataset's detection mode and by the inference API's box sources."""

__all__ = ["person_detection"]


def person_detection(det, categories=(1,)):
    """Reads one detection ``{"image_id", "category_id", "bbox", "score"}``.

    Args:
        det: one element of the json list, as loaded.

    Returns:
        ``(image_id, [x, y, w, h], score)`` with floats for the box (its first four values) and the
        score, or None when the entry's ``category_id`` is not in ``categories`` (COCO's person,
        1, by default; a custom set passes its own category too).

    Raises:
        ValueError: a malformed entry (not a mapping, a key missing, a value that is not a number,
            a box of fewer than four values).
    """
    try:
        if det["category_id"] not in categories:
            return None
        score = float(det["score"])
        box = [float(v) for v in det["bbox"][:4]]
        image_id = det["image_id"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed detection: {exc!r}") from exc
    if len(box) != 4:
        raise ValueError(f"malformed detection: a box of {len(box)} values")
    return image_id, box, score
