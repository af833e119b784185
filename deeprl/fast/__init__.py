"""The fast path: what makes small networks fast on a 2-core CPU, behind one seam.

The algorithms are written against torch modules and autograd (deeprl.policies, ppo_loss, a2c_loss); this package
computes the same numbers with less per-call overhead, and the algorithms choose it once, where the policy is
built (`build_policy(..., fast=True)` sets `policy.fast`, None where the shape needs the general modules):

    flat.py          FlatParams (parameters as views of one flat tensor), Adam in one fused call, gradient clipping
                     through a numpy view
    numpy_mlp.py     NumpyMLP: an MLP's forward in numpy for acting on a few rows (PPO, A2C, REINFORCE)
    actor_critic.py  FastMLP: an ActorCritic's forward and backward written out, and its numpy inference
    ppo.py           WrittenOutPPO: ppo_loss's gradient through a FastMLP (the objective PPO's update steps)

Every piece is tested against the reference it replaces (tests/test_ppo.py, tests/test_reinforce.py).
"""
