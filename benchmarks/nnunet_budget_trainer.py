"""nnU-Net v2's own trainer, stopped at a wall-clock budget (for benchmarks/peers.py).

``benchmarks/nnunet_setup.sh`` copies this file into the nnU-Net venv's
``nnunetv2/training/nnUNetTrainer/`` (nnU-Net finds trainers by class name only there). It is nnU-Net's ``nnUNetTrainer`` unchanged except for the length of training:

- ``HIPSEG_NNUNET_BUDGET_S`` (required): seconds of wall clock from the start of training;
- ``HIPSEG_NNUNET_ITERATIONS`` (default 50): iterations per epoch instead of 250;
  validation takes a tenth of that; the budget is checked after every iteration, so training
  ends within one iteration (plus that epoch's validation) of it;
- after every epoch the number of epochs is fitted to the budget from the mean epoch time so
  far, and the poly learning-rate schedule's length with it, so the schedule ends at the budget
  as nnU-Net's ends at its last epoch;
- no validation prediction after training (with fold ``all`` it would predict the training
  scans; the benchmark scores the held-out test scans itself).

Never imported by hipseg.
"""

import os
from time import time

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainer_hipsegBudget(nnUNetTrainer):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):  # noqa: B008  nnU-Net's signature
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.budget_s = float(os.environ["HIPSEG_NNUNET_BUDGET_S"])
        self.num_iterations_per_epoch = int(os.environ.get("HIPSEG_NNUNET_ITERATIONS", "50"))
        self.num_val_iterations_per_epoch = max(1, self.num_iterations_per_epoch // 10)
        self.num_epochs = 1000

    def run_training(self):
        started = time()
        self.on_train_start()
        while self.current_epoch < self.num_epochs:
            self.on_epoch_start()
            self.on_train_epoch_start()
            train_outputs = []
            for _ in range(self.num_iterations_per_epoch):
                # On 2 CPU cores one 2d iteration takes ~20 s: an epoch of 50 can be longer
                # than the whole budget, so the budget is also checked inside the epoch.
                if train_outputs and time() - started >= self.budget_s:
                    self.num_epochs = self.current_epoch + 1
                    break
                train_outputs.append(self.train_step(next(self.dataloader_train)))
            self.on_train_epoch_end(train_outputs)
            with torch.no_grad():
                self.on_validation_epoch_start()
                val_outputs = [self.validation_step(next(self.dataloader_val))
                               for _ in range(self.num_val_iterations_per_epoch)]
                self.on_validation_epoch_end(val_outputs)
            self.on_epoch_end()
            per_epoch = (time() - started) / self.current_epoch
            self.num_epochs = max(self.current_epoch, min(self.num_epochs,
                                                          int(self.budget_s / per_epoch)))
            self.lr_scheduler.max_steps = max(self.num_epochs, 1)
            self.print_to_log_file(f"budget: {self.num_epochs} epochs of {per_epoch:.1f} s "
                                   f"fit in {self.budget_s:.0f} s")
        self.on_train_end()

    def perform_actual_validation(self, save_probabilities: bool = False):
        self.print_to_log_file("validation prediction skipped (benchmarks/peers.py scores the "
                               "test scans)")
