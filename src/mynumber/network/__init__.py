"""The information-provision network role (情報提供ネットワークシステム): which exchanges the law
allows between agencies, and the auditor's view of who asked for what.

- :mod:`mynumber.network.legal_basis` — the table of allowed exchanges (別表第二 相当), pure;
- :mod:`mynumber.network.anomaly` — the auditor's anomaly report over access records, pure.
"""
