"""Scale-out drivers of the file audit: every core of one machine (``audit --jobs``) and a Dask
cluster (``audit --scheduler``), both as flow shards judged by workers and merged in order."""
