"""Write the wide and whitespace versions of public long data that config/examples/ runs on.

Usage: python tests/reference/mapping/make_shapes.py tests/reference
Reads mmrm/fev_data.csv and epil.csv (tests/reference/README.md) and writes, next to this script:

- fev_wide.csv: one row per patient, FEV1_VIS1..FEV1_VIS4 (R's "NA" kept as the text NA);
- fev_hours_wide.csv: the same values as a post-operative schedule, FEV1_1h, FEV1_4h, FEV1_24h,
  FEV1_48h (the four visits in order), for the hours shape;
- epil_whitespace.txt: epil as R's write.table would write it (space-separated, text quoted).
"""

import sys
from pathlib import Path

import pandas as pd

ref = Path(sys.argv[1])
out = Path(__file__).resolve().parent
fev = pd.read_csv(ref / "mmrm" / "fev_data.csv")
wide = fev.pivot(index="USUBJID", columns="AVISIT", values="FEV1")
keep = fev.drop_duplicates("USUBJID").set_index("USUBJID")[["ARMCD", "SEX", "RACE", "FEV1_BL"]]
order = fev.drop_duplicates("USUBJID")["USUBJID"]
by_visit = keep.join(wide.rename(columns=lambda v: f"FEV1_{v}")).loc[order].reset_index()
by_visit.to_csv(out / "fev_wide.csv", index=False, na_rep="NA")
hours = {"VIS1": "1h", "VIS2": "4h", "VIS3": "24h", "VIS4": "48h"}
by_hour = keep.join(wide.rename(columns=lambda v: f"FEV1_{hours[v]}")).loc[order].reset_index()
by_hour.to_csv(out / "fev_hours_wide.csv", index=False, na_rep="NA")
epil = pd.read_csv(ref / "epil.csv")
epil.to_csv(out / "epil_whitespace.txt", index=False, sep=" ", quoting=2)
