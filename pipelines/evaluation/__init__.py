"""The evaluate stage's rooms: what it reads, how it ranks and scores, what it writes.

params   EvaluateParams (params `evaluate`)
inputs   the catalog mode's inputs: documents, query sets, the shipped snapshot, the model folders
beir     the BEIR mode's inputs: a BEIR-layout dataset embedded and indexed in-process
run      every system on every query set, scored with paired bootstrap CIs (returns, writes nothing)
scores   the scoring: means, CIs and paired differences against the shipped system
runs     TREC runs and qrels, so trec_eval or ranx can re-check every number
report   metrics.json, report.md and the plots
"""
