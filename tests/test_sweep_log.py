"""A sweep's log: initlab's own lines in initlab's format (not tagged [HYDRA]), each job's
line in its own initlab.log too, and a bookkeeping line that says what its seconds were."""

from __future__ import annotations

from conftest import ok, run_initlab


def test_initlabs_lines_are_its_own_and_each_job_keeps_its_log(tmp_path):
    out = tmp_path / "sweep"
    proc = ok(run_initlab(["-m", "init=kaiming,xavier", "depth=3", "width=8", "trials=2",
                           f"hydra.sweep.dir={out}"], cwd=tmp_path))
    lines = (proc.stdout + proc.stderr).splitlines()
    ours = [x for x in lines if "Shared draws" in x or "report: " in x or "bookkeeping" in x]
    assert len(ours) == 3 and all("[initlab][INFO]" in x and "[HYDRA]" not in x for x in ours)
    assert any("[HYDRA] Launching 2 jobs" in x for x in lines)  # Hydra's own stay Hydra's
    for job in sorted(out.glob("[01]_*")):
        assert "forward stable" in (job / "initlab.log").read_text()


def test_a_jobs_line_names_its_scale_and_what_critical_chose(tmp_path, capsys):
    from conftest import main_in_process

    code, _ = main_in_process(["init=critical", "activation=tanh", "depth=4", "width=16",
                               "trials=2", "batch=2", "input_correlation=0.5", "report=false",
                               f"hydra.run.dir={tmp_path}"], capsys)
    assert code == 0
    line = (tmp_path / "initlab.log").read_text().splitlines()[0]
    # critical picks tanh's edge at its default sigma_b2 (README's table: 1.761, 0.05)
    assert "bias=normal(sigma_b2=0.05)" in line
    assert "; chose sigma_w2 1.761, sigma_b2 0.05 (chi_1 1);" in line
    assert "final corr median" in line and "(theory " in line


def test_a_sweeps_job_names_carry_the_scales_it_sets(tmp_path):
    out = tmp_path / "sweep"
    ok(run_initlab(["-m", "init=scaled", "init.sigma_w2=1.0,1.5", "bias=normal",
                    "bias.sigma_b2=0.05", "activation=tanh", "depth=3", "width=8", "trials=2",
                    "report=false", f"hydra.sweep.dir={out}"], cwd=tmp_path))
    names = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert names == ["0_scaled_tanh_depth3_sigma_w2=1.0_sigma_b2=0.05",
                     "1_scaled_tanh_depth3_sigma_w2=1.5_sigma_b2=0.05"]


def test_a_critical_runs_report_says_what_it_chose(tmp_path, capsys):
    from conftest import main_in_process

    code, _ = main_in_process(["init=critical", "activation=tanh", "depth=3", "width=8",
                               "trials=2", f"hydra.run.dir={tmp_path}"], capsys)
    assert code == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "init=critical chose σ_w² = 1.761, σ_b² = 0.05 (χ₁ = 1) for tanh." in text
