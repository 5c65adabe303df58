"""LiveApproval on the operator side: the resource's model, the evaluation of approvals
against the trust policy, the scheduler that re-evaluates them when time alone changes
their verdict, and the enforcement that keeps live engines in step with the verdict.

The cryptography and the rules are the engine's (`hean_engine.approval`): the engine
checks the same approval again itself, so both sides share one implementation.
"""
