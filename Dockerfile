# A Hugging Face Space (Docker SDK) or any container host: docker build -t mlp-demo . && docker run -p 8501:8501 mlp-demo
FROM python:3.11-slim

# Spaces run the container as uid 1000; give that user a home and the app folder.
RUN useradd -m -u 1000 user
WORKDIR /home/user/app

# A CPU Space needs no CUDA: the CPU build of torch is a fraction of the size and installs first,
# so requirements.txt's torch==2.14.1 is already satisfied by 2.14.1+cpu.
# The lecture hall (deploy/docker-compose.yml) builds it with REQUIREMENTS=requirements-cluster.txt
# (Ray too), and its GPU worker with TORCH_INDEX=https://download.pytorch.org/whl/cu128.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG REQUIREMENTS=requirements.txt
RUN pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1 --index-url ${TORCH_INDEX}
COPY requirements*.txt ./
RUN pip install --no-cache-dir -r ${REQUIREMENTS}

COPY --chown=user . .
USER user
# MNIST downloads into ./data on the first training; both folders are lost when the Space
# restarts unless persistent storage is attached (then point them at /data).
ENV MNIST_ROOT=/home/user/app/data MLP_DEMO_CHECKPOINTS=/home/user/app/checkpoints
EXPOSE 8501
CMD ["streamlit", "run", "app.py", "--server.port=8501", "--server.address=0.0.0.0"]
