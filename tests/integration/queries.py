"""Queries shared by the integration tests (prompts the tiny model was trained near, and new ones)."""

from selfrag.types import Passage, Query

ALICE = Passage("a1", "alice", "alice is a singer from paris .")
BOB = Passage("b1", "bob", "bob was born in london .")
CAROL = Passage("c1", "carol", "carol is a politician .")

QUERIES = [
    Query("q1", "who is alice ?", "who is alice ?", passages=(ALICE, BOB)),
    Query("q2", "who is bob ?", "who is bob ?", passages=(BOB, ALICE)),
    Query("q3", "what is the capital of france ?", "what is the capital of france ?", passages=(ALICE, CAROL)),
    Query("q4", "who is carol ?", "who is carol ?", passages=(CAROL, BOB)),
]
