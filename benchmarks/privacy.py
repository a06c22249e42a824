"""Privacy benchmark: recall and precision of the free-text scrubber on a seeded corpus.

Run: .venv/bin/python benchmarks/privacy.py
Prints tables side by side with two baselines and writes benchmarks/results/privacy.json.

The corpus (permed.privacy._synthetic) is generated: 500 invented patients, each note carrying
every Safe Harbor identifier kind once in one of several formats, plus clinical text that is
not an identifier (doses, vitals, laboratory values, lone years, ages under 90, codes, a
"Attending: Agree ..." line, a state name after "moved to"). Recall counts an identifier as
found only when every character of it is replaced; precision counts a replaced span as right
when it overlaps a seeded identifier. The same author wrote the recognizers and the corpus
templates, so this measures coverage of the formats listed in docs/security.md, not
performance on real notes.

Baselines: "record values only" replaces the record's own identifier values literally (what a
script that blanks the table's name and MRN in the note does); "formats only" is permed's
scrubber without the record's name fields.
Acceptance (issue 6): recall >= 0.98 and precision >= 0.90 for permed.
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import print_table, write_results  # noqa: E402
from permed.privacy import Key, deidentify_frame, risk_summary  # noqa: E402
from permed.privacy._synthetic import SeededNote, phi_notes, phi_table  # noqa: E402
from permed.privacy._text import Span, find_spans  # noqa: E402
from permed.study import Study  # noqa: E402

NOTES, SEED = 500, 2026
RECALL_TARGET, PRECISION_TARGET = 0.98, 0.90


def _record_values_only(note: SeededNote) -> list[Span]:
    spans = []
    for tag, values in note.known.items():
        for value in values:
            for match in re.finditer(re.escape(value), note.text, re.IGNORECASE):
                spans.append(Span(match.start(), match.end(), tag))
    return spans


SCRUBBERS: dict[str, Callable[[SeededNote], list[Span]]] = {
    "permed scrubber": lambda note: find_spans(note.text, note.known),
    "formats only (no record names)": lambda note: find_spans(note.text),
    "record values only": _record_values_only,
}


def _score(notes: list[SeededNote], scrub: Callable[[SeededNote], list[Span]]) -> dict:
    found = covered = predicted = correct = leaks = 0
    missed: Counter[str] = Counter()
    per_kind: Counter[str] = Counter()
    started = time.perf_counter()
    for note in notes:
        spans = scrub(note)
        hit = {i for s in spans for i in range(s.start, s.end)}
        for start, end, kind in note.spans:
            found += 1
            per_kind[kind] += 1
            if all(i in hit for i in range(start, end)):
                covered += 1
            else:
                missed[kind] += 1
                leaks += 1
        predicted += len(spans)
        correct += sum(any(s.start < b and a < s.end for a, b, _ in note.spans) for s in spans)
    seconds = time.perf_counter() - started
    return {"recall": covered / found, "precision": correct / max(predicted, 1),
            "identifiers": found, "spans": predicted, "missed": leaks,
            "notes_per_second": len(notes) / seconds,
            "recall_by_kind": {k: 1 - missed[k] / n for k, n in sorted(per_kind.items())}}


def _present(value: str, text: str) -> bool:
    """Whether ``value`` is in ``text`` as a whole token (not inside a pseudonym or a number)."""
    return re.search(rf"(?<![\w/.-]){re.escape(value)}(?![\w/-])", text) is not None


def _tabular() -> dict:
    """De-identify a seeded table: leaks of seeded values and k-anonymity before and after."""
    frame, seeded = phi_table(200, seed=SEED)
    study = Study(id="patient_id", quasi_identifiers=["age", "sex", "zip"],
                  deidentify={"admit_date": "shift_date", "discharge_date": "shift_date",
                              "note": "scrub"})
    started = time.perf_counter()
    result = deidentify_frame(frame, Key(bytes(range(32))), study)
    seconds = time.perf_counter() - started
    text = result.frame.to_csv(index=False)
    values = [v for kind, vs in seeded.items() if kind != "note:AGE" for v in vs if len(v) >= 4]
    before, after = risk_summary(frame, study.quasi_identifiers), result.risk["after"]
    return {"rows": len(frame), "seeded_values": len(values),
            "seeded_values_left": sum(_present(v, text) for v in values), "seconds": seconds,
            "k_before": before.k, "k_after": after.k, "unique_before": before.unique_share,
            "unique_after": after.unique_share}


def main() -> None:
    notes = phi_notes(NOTES, seed=SEED)
    results = {name: _score(notes, scrub) for name, scrub in SCRUBBERS.items()}
    rows = [{"scrubber": name, "recall": f"{r['recall']:.4f}", "precision": f"{r['precision']:.4f}",
             "missed": r["missed"], "spans": r["spans"], "notes/s": f"{r['notes_per_second']:.0f}"}
            for name, r in results.items()]
    print(f"Free-text scrubbing: {NOTES} seeded notes, {results['permed scrubber']['identifiers']}"
          " identifiers (18 Safe Harbor kinds)\n")
    print_table(rows, ["scrubber", "recall", "precision", "missed", "spans", "notes/s"])
    kinds = results["permed scrubber"]["recall_by_kind"]
    print("\nRecall by kind (permed scrubber vs formats only vs record values only)\n")
    print_table([{"kind": k, **{name[:14]: f"{r['recall_by_kind'][k]:.3f}"
                                for name, r in results.items()}} for k in kinds],
                ["kind", *(name[:14] for name in results)])
    tabular = _tabular()
    print("\nTabular de-identification of a seeded 200-patient table\n")
    print_table([{k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in tabular.items()}],
                list(tabular))
    ours = results["permed scrubber"]
    passed = ours["recall"] >= RECALL_TARGET and ours["precision"] >= PRECISION_TARGET
    print(f"\nacceptance: recall {ours['recall']:.4f} >= {RECALL_TARGET}, precision "
          f"{ours['precision']:.4f} >= {PRECISION_TARGET}: {'PASS' if passed else 'FAIL'}")
    path = write_results("privacy", {"corpus": {"notes": NOTES, "seed": SEED},
                                     "scrubbing": results, "tabular": tabular,
                                     "acceptance": {"recall": RECALL_TARGET,
                                                    "precision": PRECISION_TARGET,
                                                    "passed": passed}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
