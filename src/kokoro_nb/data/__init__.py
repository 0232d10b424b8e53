"""Layer 2, the data: find, download and verify the releases; parse KokoroChat, Psy-Insight and the English translation; the paper's splits."""
