"""What GANs are for, beyond sampling: the survey's applications in use, on a trained run. Their training is a task
of gankit/tasks/; what is here only loads a run and applies it, and never imports the training code.

    missing data      gankit inpaint   apps/inpaint.py   search z so that G(z) matches the known pixels
                                                         (Yeh et al. 2017)
    super-resolution  gankit upscale   apps/upscale.py   a task sr run's G on low-resolution images (SRGAN)
    missing labels    gankit classify  apps/classify.py  a task ssl run's D as a classifier (Salimans et al. 2016)
"""
