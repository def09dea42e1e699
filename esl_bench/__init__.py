"""The benchmark harness above both packages: it trains with esl_train and measures with esl_deploy
(`python -m esl_bench.compare`); esl_train itself knows nothing of deployment."""
