import torch

from bench.handwriting import plain_fine_tuning
from mlp_demo.config import TrainConfig
from mlp_demo.data import split_mnist
from mlp_demo.model import MLP
from mlp_demo.teach import TeachConfig, accuracy, predictions, taught_parameters, teach
from mlp_demo.train import Trainer


def agreement(a, b, images) -> float:
    same = torch.tensor(predictions(a, images)) == torch.tensor(predictions(b, images))
    return same.float().mean().item()


def test_a_taught_model_stays_closer_to_its_start_than_plain_fine_tuning(real_raw):
    """Both learn the same 20 odd examples (transposed digits with labels shifted by 3); ours
    changes fewer of its readings of MNIST's test digits."""
    train_x, train_y, test_x, test_y = real_raw
    data = split_mnist(train_x[:6000], train_y[:6000], test_x[:2000], test_y[:2000], val_size=0)
    trainer = Trainer(TrainConfig(hidden=(64, 32), epochs=2, batch_size=64, val_size=0, device="cpu"), data)
    trainer.run()
    start = trainer.model.cpu().eval()
    images = data.test_x[:20].transpose(1, 2).contiguous()
    labels = (data.test_y[:20] + 3) % 10
    ours = teach(start, images, labels, data.train_x, data.train_y, TeachConfig())
    plain = plain_fine_tuning(start, images, labels, data.train_x, data.train_y,
                              steps=TeachConfig().steps)
    test_x, test_y = data.test_x[20:], data.test_y[20:]
    assert agreement(start, ours, test_x) > agreement(start, plain, test_x)
    assert accuracy(ours, images, labels) > accuracy(start, images, labels) + 0.3  # it did learn them


def test_the_first_layer_stays_fixed_and_the_start_is_not_touched(tiny_raw):
    data = split_mnist(*tiny_raw, val_size=0)
    start = MLP(TrainConfig(hidden=(16, 8)))
    before = [p.detach().clone() for p in start.parameters()]
    taught = teach(start, data.test_x[:10], data.test_y[:10], data.train_x, data.train_y,
                   TeachConfig(steps=5))
    assert torch.equal(taught[0].weight, start[0].weight) and torch.equal(taught[0].bias, start[0].bias)
    assert not torch.equal(taught[2].weight, start[2].weight)
    assert all(torch.equal(p, b) for p, b in zip(start.parameters(), before))
    # With one hidden layer or none, every layer is taught.
    assert len(taught_parameters(MLP(TrainConfig(hidden=(16,))))) == 4
    assert len(taught_parameters(MLP(TrainConfig(hidden=())))) == 2
