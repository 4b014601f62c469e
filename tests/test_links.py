"""Title links (serving.links): which titles link, longest first, and the weighted RRF merge; then the wiring
in Snapshot.search on the tiny published catalog (tests/snapshot_fixture.py)."""

from __future__ import annotations

import numpy as np
import pytest

from serving.fusion import Fusion
from serving.links import MAX_DOCUMENT_FREQUENCY, TitleLinker, link_fuse
from serving.reader import Reader
from serving.snapshot import Snapshot

DOCUMENTS = 10_000  # a term in at most 30 of them is specific
COUNTS = {"equilibrium": 2, "romance": 900, "jaws": 5, "2": 400, "future": 60, "muppets": 3}


def linker(titles: list[str | None]) -> TitleLinker:
    return TitleLinker(titles, COUNTS, DOCUMENTS)


def test_only_specific_titles_link():
    assert MAX_DOCUMENT_FREQUENCY * DOCUMENTS == 30
    titles = ["Equilibrium", "Romance", "It", "If....", "The Future", None, "Unknown Words"]
    assert list(linker(titles).rows) == ["equilibrium"]  # genre word, stopwords only, frequent, no title, no term
    assert linker(titles).links("Something like EQUILIBRIUM, but a romance?") == [0]


def test_the_longest_title_wins_and_matches_do_not_overlap():
    links = linker(["Jaws", "Jaws 2", "The Muppets", "Muppets"])
    assert links.links("so I loved Jaws 2, and the muppets") == [1, 2]
    assert links.links("jaws then jaws again") == [0]  # named twice, linked once
    assert linker(["Jaws", "Jaws"]).links("jaws") == [0]  # two items share a title: the first


def test_a_tiny_catalog_links_a_title_whose_term_only_its_own_document_holds():
    assert TitleLinker(["Red silk blouse", "Red dress"], {"red": 2, "silk": 1, "blouse": 1, "dress": 1}, 2
                       ).links("red silk blouse or red dress") == [0, 1]
    assert TitleLinker(["Red dress"], {"red": 2, "dress": 2}, 2).links("red dress") == []


def test_link_fuse_on_known_lists():
    rows, scores = link_fuse(np.array([7, 8, 9]), [np.array([5, 9])], weight=1.0, rrf_k=60, k=3)
    assert rows.tolist() == [9, 7, 5]  # 9: 1/63 + 1/62; 7 and 5: 1/61 each, a tie kept in `ranked`'s order
    np.testing.assert_allclose(scores, [1 / 63 + 1 / 62, 1 / 61, 1 / 61])
    rows, _ = link_fuse(np.array([7, 8, 9]), [np.array([5])], weight=0.5, rrf_k=60, k=4)
    assert rows.tolist() == [7, 8, 9, 5]  # the weight halves the linked list's share: 0.5/61 < 1/63


def test_search_with_links_merges_the_named_items_neighbours(published_root, tmp_path):
    plain = Reader.open(published_root, "fashion", cache_dir=tmp_path).snapshot
    linked = Snapshot(plain.index, plain.encoder, plain.bm25, Fusion("rrf", link_weight=1.0), plain.manifest)
    text = "something like the red silk blouse"
    assert [plain.index.global_ids()[g] for g in linked.linker.links(text)] == ["i09"]
    ids = plain.index.global_ids()
    base = [h.item_id for h in plain.search(text, k=50, mode="rrf")]
    neighbours = ["i09"] + [h.item_id for h in plain.more_like("i09", k=50)]
    expected, _ = link_fuse(np.array([ids.index(i) for i in base]),
                            [np.array([ids.index(i) for i in neighbours])], 1.0, 60, 5)
    assert [h.item_id for h in linked.search(text, k=5)] == [ids[g] for g in expected.tolist()]
    unnamed = "red dress"  # no specific title named: the plain RRF ranking
    assert [h.item_id for h in linked.search(unnamed, k=5)] == [h.item_id for h in plain.search(unnamed, 5, mode="rrf")]
    with pytest.raises(ValueError, match="mode"):
        linked.search(text, mode="links")
