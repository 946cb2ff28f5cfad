"""A small labelled set for the training lesson (`numpybert explain --train`, docs/training.md):
32 short movie-review sentences written for numpybert, 16 positive (label 1) and 16 negative (0).
Small on purpose: a few dozen steps of a MiniLM classifier on it take seconds, and every sentence
fits in one batch."""

LABELS = ("negative", "positive")

SENTENCES = [
    ("A wonderful film, I loved every minute of it.", 1),
    ("The acting was superb and the story moving.", 1),
    ("One of the best movies I have seen this year.", 1),
    ("Beautifully shot, with a score that stays with you.", 1),
    ("A warm, funny and clever comedy.", 1),
    ("The cast is excellent and the script is sharp.", 1),
    ("I left the cinema smiling.", 1),
    ("A delightful surprise from start to finish.", 1),
    ("Gripping, tense and brilliantly directed.", 1),
    ("My kids adored it and so did I.", 1),
    ("A touching story told with great care.", 1),
    ("The best performance of her career.", 1),
    ("Smart, fresh and a joy to watch.", 1),
    ("I would happily watch it again tomorrow.", 1),
    ("An inspiring film that deserves every award.", 1),
    ("Great fun, with a perfect ending.", 1),
    ("A dull film, I was bored after ten minutes.", 0),
    ("The acting was wooden and the plot made no sense.", 0),
    ("One of the worst movies I have seen this year.", 0),
    ("Badly shot, with music that grates on the ears.", 0),
    ("A cold, humourless and stupid comedy.", 0),
    ("The cast is wasted and the script is lazy.", 0),
    ("I walked out of the cinema halfway through.", 0),
    ("A tiresome mess from start to finish.", 0),
    ("Slow, predictable and poorly directed.", 0),
    ("My kids hated it and so did I.", 0),
    ("A hollow story told without any care.", 0),
    ("The weakest performance of her career.", 0),
    ("Clumsy, stale and a chore to watch.", 0),
    ("I would not watch it again if you paid me.", 0),
    ("A forgettable film that deserves no awards.", 0),
    ("No fun at all, with a terrible ending.", 0),
]
