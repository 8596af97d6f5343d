"""The tasks, one wing each: a task's trainer (its set-up and step, run by session.Session) and its use after training,
in one folder; its properties are its row of registry.TASKS, and table.py maps its name to its trainer.

    gan/      trainer.py  G against D, the survey's recipe
              inpaint.py  gankit inpaint: search z so that G(z) matches the known pixels (Yeh et al. 2017), with
              search.py   the search's choices as plain data. Inpainting uses a gan run's G and D and nothing else, so
                          it lives in the gan wing (its registry row's `use`), not beside the samplers.
    ssl/      trainer.py  D as a (K+1)-way classifier learning from few labels (Salimans et al. 2016)
              classify.py gankit classify: the run's D labels new images
    sr/       trainer.py  G upscales low-resolution images (SRGAN, Ledig et al. 2017)
              upscale.py  gankit upscale: the run's G on new images, scored beside bicubic
    predict/  trainer.py  G samples the next frames of a sequence from the past ones and z (SAVP, Lee et al. 2018)
              futures.py  gankit predict: K futures of each context, scored on held-out sequences
    table.py   the task table: each task's trainer, and train(cfg)
    common.py  what the trainers' set-up shares beyond gankit.setup
    use.py     what the uses share: the user's images read, the run's arguments, output folders staged

A task's use never imports a trainer, session.py or step.py (tests/test_imports.py): this package and its wings'
__init__ import nothing, so `import gankit.tasks.sr.upscale` loads no training code.
"""
