"""A synthetic result shaped like the pipeline's, as long as a 2-hour meeting: for the
page's speed (bench/web_page.py) and its structure under that load (test_web_app.py)."""

from __future__ import annotations

import random

VOCAB = ("the", "project", "budget", "meeting", "we", "should", "review", "numbers",
         "next", "quarter", "customers", "really", "think", "about", "that", "okay", "so",
         "yes", "right", "plan", "design", "team", "release", "schedule", "question",
         "answer", "because", "maybe", "later", "today", "tomorrow")


def synthetic_result(job_id: str, words: int, duration: float, speakers: int,
                     seed: int = 7) -> dict:
    """A result shaped like the pipeline's: segments of 5-25 words, turns of 1-3
    segments per speaker, word times spread over ``duration`` with pauses."""
    rng = random.Random(seed)
    per_word = duration / (words * 1.15)  # leave room for pauses between segments
    labels = [f"SPEAKER_{i:02d}" for i in range(speakers)]
    segments, turns, t, left, who = [], [], 1.0, words, 0
    talk = dict.fromkeys(labels, 0.0)
    while left > 0:
        who = (who + rng.choice((1, 1, 2))) % speakers
        label = labels[who]
        turn_start = t
        for _ in range(rng.randint(1, 3)):
            n = min(left, rng.randint(5, 25))
            ws, start = [], t
            for _ in range(n):
                length = per_word * rng.uniform(0.6, 1.2)
                ws.append({"word": " " + rng.choice(VOCAB), "start": round(t, 3),
                           "end": round(t + length, 3), "score": 0.9, "speaker": label})
                t += per_word
            left -= n
            text = "".join(w["word"] for w in ws)
            segments.append({"start": round(start, 3), "end": round(t, 3), "speaker": label,
                             "text": text, "words": ws})
            t += per_word * rng.uniform(0.5, 3)
            if left <= 0:
                break
        turns.append({"start": round(turn_start, 3), "end": round(t, 3), "speaker": label})
        talk[label] += t - turn_start
    return {"schema_version": 1, "job_id": job_id, "language": "en",
            "audio": {"duration": duration, "sample_rate": 16000},
            "speakers": [{"id": lb, "name": None, "talk_time": round(talk[lb], 3)}
                         for lb in labels],
            "segments": segments, "diarization": turns,
            "models": {"bench": "synthetic 20 000-word result"}, "timings": {}}
