"""Test-session settings."""

import torch

# The suite trains tiny models; one thread avoids OpenMP hand-off costs on small CI machines.
torch.set_num_threads(1)


def train_demo_run(folder, *flags, rows: int, seed: int, epochs: int = 2):
    """A small run of train_classifier.py on a demo cohort written to ``folder``: its run folder."""
    import train_classifier
    from imbalance.demo import make_demo_cohort

    csv = folder / "cohort.csv"
    make_demo_cohort(n_rows=rows, seed=seed).to_csv(csv, index=False)
    out = folder / "run"
    assert train_classifier.main(["--csv_path", str(csv), "--id_col", "patient_id", "--output_dir", str(out),
                                  "--epochs", str(epochs), "--quiet", "--no_tensorboard", "--no_plots", "--optimize_thresholds",
                                  *map(str, flags)]) == 0
    return out
