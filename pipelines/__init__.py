"""semrec pipeline stages: each module is one `dvc.yaml` stage, run through `semrec <stage>`."""
