"""Write minicluster/result/schemas/result.schema.json from the typed result model.

Run after changing minicluster/result/model.py: `python scripts/gen_result_schema.py`.
tests/result/test_schema_generated.py fails while the shipped file differs from the model's.
"""

from __future__ import annotations

from minicluster.result.schema import write_schema

if __name__ == "__main__":
    print(f"wrote {write_schema()}")
