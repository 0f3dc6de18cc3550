# A Hugging Face Space (Docker SDK) or any container host:
#   docker build -t mlp-demo . && docker run -p 8501:8501 mlp-demo
# The lecture hall (deploy/docker-compose.yml, deploy/kubernetes/) runs the same image.
FROM python:3.11-slim

# Spaces run the container as uid 1000. Every folder the app writes is made here, as root, and
# handed to that user before anything else: WORKDIR would create a missing folder as root, and
# COPY --chown re-owns what it copies, never the folder it copies into. /shared is the hall's
# volume (a new named volume takes this folder's owner); /data is a Space's persistent storage.
RUN useradd -m -u 1000 user \
 && mkdir -p /home/user/app/data /home/user/app/checkpoints /shared /data \
 && chown -R user:user /home/user/app /shared /data
ENV HOME=/home/user
WORKDIR /home/user/app

# A CPU Space needs no CUDA: the CPU build of torch (about a sixth of the CUDA build's size)
# installs first, so requirements.txt's torch==2.14.1 is already satisfied by 2.14.1+cpu.
# The lecture hall builds it with REQUIREMENTS=requirements-cluster.txt (Ray too), and its GPU
# worker with TORCH_INDEX=https://download.pytorch.org/whl/cu128.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG REQUIREMENTS=requirements.txt
RUN pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1 --index-url ${TORCH_INDEX}
COPY requirements*.txt ./
RUN pip install --no-cache-dir -r ${REQUIREMENTS}

USER user
COPY --chown=user . .
ENV MNIST_ROOT=/home/user/app/data MLP_DEMO_CHECKPOINTS=/home/user/app/checkpoints
# MNIST is fetched once here, where the builder has internet, so a restart does not download it
# again. Optional: without internet the image still builds, and the first Train downloads it.
ARG FETCH_MNIST=1
RUN if [ "$FETCH_MNIST" = 1 ]; then python -c "from mlp_demo.data import load_mnist; load_mnist()" \
      || echo "MNIST not fetched (no internet?): the first training downloads it"; fi
EXPOSE 8501
# Headless: a container has no browser to open (a laptop's `streamlit run app.py` opens one).
CMD ["streamlit", "run", "app.py", "--server.port=8501", "--server.address=0.0.0.0", "--server.headless=true"]
