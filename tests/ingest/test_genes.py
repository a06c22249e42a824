"""Expression matrices in either orientation, and VCF files, as samples x genes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permed.exceptions import DataError
from permed.ingest.genes import read_expression, read_vcf_gene_counts
from permed.preprocess import LogExpression, VarianceFilter, gene_pipeline
from permed.testing import shared_data

GOLUB = "golub_leukemia"


@pytest.fixture(scope="module")
def golub_slice(tmp_path_factory):
    """The first 300 genes of Golub's 38 training samples, in its genes x samples layout."""
    source = shared_data(f"{GOLUB}/data_set_ALL_AML_train.csv")
    path = tmp_path_factory.mktemp("genes") / "golub300.csv"
    pd.read_csv(source, nrows=300).to_csv(path, index=False)
    return path


def test_genes_by_samples_is_transposed_with_labels(golub_slice):
    labels = shared_data(f"{GOLUB}/actual.csv")
    table = read_expression(golub_slice, labels=labels, label_name="ALL_AML", keep_ids="sample")
    assert table.shape == (38, 2 + 300)
    assert list(table.columns[:3]) == ["sample", "ALL_AML", "gene_AFFX-BioB-5_at"]
    assert not any("call" in c for c in table.columns)
    first = table.set_index("sample")
    # the file's sample columns run 1-27, 34-38, 28-33: values follow the ids, not positions
    assert first.loc["1", "gene_AFFX-BioB-5_at"] == -214
    assert first.loc["34", "gene_AFFX-BioB-5_at"] == -20
    assert first.loc["38", "gene_AFFX-BioB-5_at"] == -72
    assert table["ALL_AML"].value_counts().to_dict() == {"ALL": 27, "AML": 11}


def test_ids_are_left_out_by_default(golub_slice):
    table = read_expression(golub_slice)
    assert "sample" not in table.columns
    assert table.shape == (38, 300)


def test_samples_by_genes_round_trip(golub_slice, tmp_path):
    table = read_expression(golub_slice, keep_ids="sample")
    wide = table.rename(columns=lambda c: c.removeprefix("gene_"))
    wide.to_csv(tmp_path / "wide.csv", index=False)
    again = read_expression(tmp_path / "wide.csv", keep_ids="sample")
    pd.testing.assert_frame_equal(again, table, check_dtype=False)


def test_samples_without_a_label_are_named(golub_slice, tmp_path):
    pd.DataFrame({"patient": [1, 2], "cancer": ["ALL", "ALL"]}).to_csv(tmp_path / "l.csv",
                                                                       index=False)
    with pytest.raises(DataError, match=r"^36 samples of the expression file have no label in "):
        read_expression(golub_slice, labels=tmp_path / "l.csv")


def test_unknown_orientation_is_refused(golub_slice):
    with pytest.raises(DataError, match="orientation 'rows' is not known; expected one of auto"):
        read_expression(golub_slice, orientation="rows")


def test_log_and_variance_filter():
    raw = np.array([[-50.0, 200.0, 5000.0], [30.0, 220.0, 100.0], [400.0, 210.0, 16500.0]])
    log = LogExpression().fit(raw)
    assert log.apply_log_
    np.testing.assert_allclose(log.transform(raw)[:, 0], np.log2([20.0, 30.0, 400.0]))
    assert log.transform(raw)[2, 2] == pytest.approx(np.log2(16000.0))
    assert not LogExpression().fit(np.log2(np.abs(raw) + 1)).apply_log_
    kept = VarianceFilter(k=2).fit(raw)
    assert kept.support_.tolist() == [True, False, True]
    names = kept.get_feature_names_out(["a", "b", "c"]).tolist()
    assert names == ["a", "c"]


def test_gene_pipeline_is_fitted_on_training_rows_only():
    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.lognormal(6, 1, size=(20, 50)), columns=[f"g{i}" for i in range(50)])
    pipeline = gene_pipeline(top_genes=10).fit(train)
    assert pipeline.transform(train).shape == (20, 10)
    np.testing.assert_allclose(pipeline.transform(train).mean(axis=0), 0, atol=1e-9)


VCF = """##fileformat=VCFv4.2
##INFO=<ID=CSQ,Number=.,Type=String,Description="Consequence. Format: Allele|Consequence|SYMBOL">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tp1\tp2
17\t43044295\t.\tA\tG\t50\tPASS\tGENEINFO=BRCA1:672\tGT\t0/1\t0/0
17\t43045000\t.\tC\tT\t50\tPASS\tANN=T|missense|MODERATE|BRCA1|ENSG1\tGT:DP\t1/1:20\t./.
13\t32316461\t.\tG\tA\t50\tPASS\tCSQ=A|stop_gained|BRCA2\tGT\t0|0\t0|1
"""


def test_vcf_counts_alternate_alleles_per_gene(tmp_path):
    (tmp_path / "calls.vcf").write_text(VCF)
    table = read_vcf_gene_counts(tmp_path / "calls.vcf")
    assert table.to_dict("list") == {"sample": ["p1", "p2"], "gene_BRCA1": [3, 0],
                                     "gene_BRCA2": [0, 1]}


def test_vcf_without_samples_is_refused(tmp_path):
    (tmp_path / "sites.vcf").write_text("##fileformat=VCFv4.2\n")
    with pytest.raises(DataError, match="has no '#CHROM' header line with sample columns"):
        read_vcf_gene_counts(tmp_path / "sites.vcf")


def test_study_genes_are_glob_patterns_kept_in_toml(tmp_path):
    from permed.study import Study

    study = Study(task="diagnose", target="ALL_AML", genes=["gene_*", "BRCA?"],
                  notes=["text"], text_encoder="minilm")
    columns = ["ALL_AML", "gene_a", "age", "BRCA1", "BRCA12", "gene_b"]
    assert study.gene_columns(columns) == ["gene_a", "BRCA1", "gene_b"]
    (tmp_path / "s.toml").write_text(study.to_toml())
    again = Study.from_toml(tmp_path / "s.toml")
    assert (again.genes, again.notes, again.text_encoder) == (["gene_*", "BRCA?"], ["text"],
                                                              "minilm")
