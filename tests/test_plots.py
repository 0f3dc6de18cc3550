import numpy as np

from mlp_demo.plots import pixels, probability_figure, smooth, training_figure
from mlp_demo.server.jobs import JobSnapshot, Progress


def test_smoothing_is_debiased():
    assert smooth([2.0, 2.0, 2.0]) == [2.0, 2.0, 2.0]
    assert smooth([1.0, 0.0], weight=0.5)[1] == 1 / 3


def test_training_figure_has_loss_accuracy_and_lr():
    epoch = {"epoch": 1, "train_loss": 0.3, "val_loss": 0.2, "train_acc": 0.9, "val_acc": 0.95,
             "test_acc": 0.96}
    history = JobSnapshot("running", "training", {"epochs": 2}, progress=Progress(total_steps=20),
                          epochs=(epoch,),
                          loss_steps=tuple(range(1, 11)), loss=tuple(1 / s for s in range(1, 11)),
                          lr_steps=tuple(range(1, 11)), lr=(1e-3,) * 10)
    fig = training_figure(history)
    names = [t.name for t in fig.data]
    assert {"batch loss (smoothed)", "validation loss", "test accuracy", "learning rate"} <= set(names)
    assert list(fig.data[0].x)[-1] == 1.0  # step 10 of 10 per epoch is epoch 1
    import plotly.graph_objects as go
    checked = go.Figure(fig.to_dict())  # built unvalidated: Plotly must accept it all the same
    assert checked.to_dict()["data"] == fig.to_dict()["data"]
    assert [t.yaxis for t in checked.data][-1] == "y3" and checked.layout.yaxis.type == "log"


def test_probability_bars_highlight_the_prediction():
    probs = np.array([0.01, 0.02, 0.9, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01])
    bar = probability_figure(probs).data[0]
    assert list(bar.x) == [str(d) for d in range(10)]
    assert len(set(bar.marker.color)) == 2 and bar.marker.color[2] != bar.marker.color[0]
    assert bar.text[2] == "90%"


def test_pixels_enlarge_crisply():
    image = np.array([[0, 1], [0.5, 0]])
    out = pixels(image, 3)
    assert out.shape == (6, 6) and out.dtype == np.uint8
    assert out[0, 5] == 255 and out[5, 0] == 127 and out[0, 0] == 0


def test_activations_grid_has_one_square_per_unit_in_order():
    from mlp_demo.plots import activations_grid
    h = np.zeros(10, np.float32)
    h[0], h[4] = 2.0, -1.0
    picture = activations_grid(h, width=40)  # 4x4 grid of 10-pixel squares, 6 spare
    assert picture.shape == (30, 40, 3) and picture.dtype == np.uint8
    squares = picture[::10, ::10].reshape(-1, 3)
    assert tuple(squares[0]) == (5, 113, 176)  # the largest positive value: full blue
    assert tuple(squares[1]) == (255, 255, 255)  # zero: white
    assert squares[4][0] > squares[4][2]  # negative: red
    assert all(tuple(s) == (200, 200, 200) for s in squares[10:])  # spare squares grey


def test_contact_sheet_places_each_image_in_rows_with_room_for_captions():
    from mlp_demo.plots import contact_sheet
    images = [np.full((28, 28), i / 12) for i in range(12)]
    sheet = contact_sheet(images, [str(i) for i in range(12)], ["red"] * 12, columns=5, scale=2)
    assert sheet.shape == (3 * (56 + 14 + 6) - 6, 5 * (56 + 6) - 6, 3)
    cell = 56 + 6
    assert (sheet[20, cell * 3 + 20] == int(3 / 12 * 255)).all()  # image 3, row 0 column 3
    assert (sheet[76 + 20, cell * 1 + 20] == int(6 / 12 * 255)).all()  # image 6, row 1 column 1
    caption = sheet[57:70, 0:56]
    assert ((caption[..., 0] > 150) & (caption[..., 1] < 100)).any()  # red text under image 0
    assert (sheet[2 * 76 + 20, cell * 3 + 20] == 255).all()  # no image 13: white


def test_unvalidated_figures_pass_plotly_validation():
    """The pad's figures skip validation for speed; Plotly itself must accept what they hold."""
    import plotly.graph_objects as go

    from mlp_demo.plots import probabilities_over_steps
    probs = np.full(10, 0.01)
    probs[3] = 0.91
    for fig in (probability_figure(probs), probabilities_over_steps([1, 2, 3], [probs] * 3)):
        checked = go.Figure(fig.to_dict())  # raises on any unknown key or bad value
        assert checked.to_dict()["data"] == fig.to_dict()["data"]
        assert checked.layout.template.layout.plot_bgcolor == "white"


def test_board_figures_pass_plotly_validation_and_escape_names():
    import plotly.graph_objects as go

    from mlp_demo.plots import board_accuracies, board_curves, board_scatter
    points = [{"x": 0.001, "y": 0.97, "colour": "adam", "label": "<b>Bo</b>"},
              {"x": 0.01, "y": 0.95, "colour": "sgd", "label": "Ada"}]
    scatter = board_scatter(points, "lr", "optimizer", log_x=True)
    curves = board_curves([("<i>x</i>", [[1, 0.9], [2, 0.95]]), ("Ada", [[1, 0.8]])])
    accuracies = board_accuracies([{"x": 0.97, "y": 0.81, "label": "<b>Bo</b>", "n": 10}])
    assert "<b>" not in str(accuracies.to_dict()) and accuracies.data[1].y == (0.81,)
    for fig in (scatter, curves, accuracies):
        checked = go.Figure(fig.to_dict())  # built unvalidated: Plotly must accept it all the same
        assert checked.to_dict()["data"] == fig.to_dict()["data"]
    assert scatter.layout.xaxis.type == "log" and len(scatter.data) == 2
    assert "&lt;b&gt;Bo&lt;/b&gt;" in scatter.data[0].hovertext and "<b>" not in str(scatter.to_dict())
    assert list(curves.data[0].x) == [1, 2, None, 1, None] and "<i>" not in str(curves.to_dict())
    assert board_scatter([{"x": "adam", "y": 0.9, "colour": 1, "label": "a"}], "optimizer", "x",
                         log_x=True).layout.xaxis.type is None  # words have no log axis


def history_after(epochs: list[dict], total_epochs: int = 6) -> JobSnapshot:
    return JobSnapshot("running", "training", {"epochs": total_epochs},
                       progress=Progress(total_steps=60), epochs=tuple(epochs), loss_steps=(1, 2),
                       loss=(2.3, 2.2), lr_steps=(1, 2), lr=(1e-3, 1e-3))


def test_an_empty_accuracy_chart_runs_from_0_to_100_percent_over_the_runs_epochs():
    import plotly.graph_objects as go
    fig = go.Figure(training_figure(history_after([])).to_dict())  # validated
    assert list(fig.layout.yaxis2.range) == [0, 1]
    assert list(fig.layout.xaxis2.range) == [0, 6] and list(fig.layout.xaxis.range) == [0, 6]


def test_no_two_curves_that_mean_different_things_share_a_colour_and_each_panel_has_a_legend():
    epoch = {"epoch": 1, "train_loss": 0.5, "val_loss": 0.2, "train_acc": 0.94, "val_acc": 0.97,
             "test_acc": 0.97}
    fig = training_figure(history_after([epoch]))
    colours = {t.name: t.line.color for t in fig.data}
    assert len(set(colours.values())) == len(colours), colours
    assert {t.legend for t in fig.data} == {"legend", "legend2", "legend3"}
    assert fig.layout.yaxis2.range is None  # with data, the accuracy axis fits it


def test_the_gap_between_training_and_validation_is_explained_beside_the_chart():
    from mlp_demo.plots import WHY_TRAIN_BELOW_VALIDATION
    assert "label smoothing" in WHY_TRAIN_BELOW_VALIDATION and "eval mode" in WHY_TRAIN_BELOW_VALIDATION
    source = open("mlp_demo/ui/training.py").read()
    assert "WHY_TRAIN_BELOW_VALIDATION" in source
