"""Demo data generators: a SaaS product (`demo.saas`) and a repeat-purchase store
(`demo.store`) written in the landing layout segflow reads, with a hidden ground truth kept
outside it for evaluating the models. Plain package: imports only `contracts`."""
