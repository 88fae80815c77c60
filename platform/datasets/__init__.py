"""Getting the paper's datasets onto disk, where the loaders read them (I/O orchestration;
the loaders themselves live in ``dragsaw.workloads.data``).

    catalog.py   the datasets: archives, URLs, published digests, licences, default roots
    download.py  one file over HTTP(S): progress bar, Range resume, verify, then rename
    extract.py   zip / tar / RAR into a folder, refusing unsafe member names
    fetch.py     plan (all input checks first), download or take --from, unpack, place, check
"""
