"""Claims as code and the app that re-derives them: `icl-reproduce` (app.py). A claim (claims.py)
names the runs and records it reads and the test that decides it; one module per paper in
papers/ registers them; plan.py / runner.py train and compute what is missing; measure.py and
pages.py turn the records into the verdict table, reproduction.json and docs/results/."""
