"""One separation end to end (``run.separate``), its options, the stem files it writes, and
the public ``Separator`` API around them."""
