"""The one engine from matched transactions to outputs, driven by the file driver
(``auditor/pipeline.py``) and the live driver (``auditor/live.py``)."""
