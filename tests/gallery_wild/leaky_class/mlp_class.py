import numpy as np


class MLP:
    """One hidden layer with Leaky ReLU, softmax output, cross-entropy loss.

    forward_pass() keeps the intermediate values on the object; backward_pass() reads them.
    """

    def __init__(self, input_dim, hidden_dim, output_dim, alpha=0.01, learning_rate=0.1):
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.weights_input_hidden = np.random.randn(input_dim, hidden_dim) * np.sqrt(2.0 / input_dim)
        self.bias_hidden = np.zeros((1, hidden_dim))
        self.weights_hidden_output = np.random.randn(hidden_dim, output_dim) * np.sqrt(2.0 / hidden_dim)
        self.bias_output = np.zeros((1, output_dim))

    def leaky_relu(self, x):
        return np.where(x > 0, x, self.alpha * x)

    def leaky_relu_derivative(self, x):
        return np.where(x > 0, 1.0, self.alpha)

    def softmax(self, x):
        exp_x = np.exp(x - np.max(x, axis=1, keepdims=True))
        return exp_x / np.sum(exp_x, axis=1, keepdims=True)

    def forward_pass(self, X):
        self.input = X
        self.hidden_input = np.dot(X, self.weights_input_hidden) + self.bias_hidden
        self.hidden_output = self.leaky_relu(self.hidden_input)
        self.output_input = np.dot(self.hidden_output, self.weights_hidden_output) + self.bias_output
        self.output = self.softmax(self.output_input)
        return self.output

    def compute_loss(self, y, output):
        # y is one-hot encoded, shape (n_samples, n_classes)
        return -np.mean(np.sum(y * np.log(output), axis=1))

    def backward_pass(self, y, output):
        n_samples = y.shape[0]
        output_error = (output - y) / n_samples

        d_weights_hidden_output = np.dot(self.hidden_output.T, output_error)
        d_bias_output = np.sum(output_error, axis=0, keepdims=True)

        hidden_error = np.dot(output_error, self.weights_hidden_output.T)
        hidden_error *= self.leaky_relu_derivative(self.hidden_input)

        d_weights_input_hidden = np.dot(self.input.T, hidden_error)
        d_bias_hidden = np.sum(hidden_error, axis=0, keepdims=True)

        return d_weights_input_hidden, d_bias_hidden, d_weights_hidden_output, d_bias_output

    def update(self, grads):
        d_w1, d_b1, d_w2, d_b2 = grads
        self.weights_input_hidden -= self.learning_rate * d_w1
        self.bias_hidden -= self.learning_rate * d_b1
        self.weights_hidden_output -= self.learning_rate * d_w2
        self.bias_output -= self.learning_rate * d_b2

    def train(self, X, y, epochs=1000):
        for epoch in range(epochs):
            output = self.forward_pass(X)
            loss = self.compute_loss(y, output)
            self.update(self.backward_pass(y, output))
            if epoch % 100 == 0:
                print(f"Epoch {epoch}, Loss: {loss:.4f}")

    def predict(self, X):
        return np.argmax(self.forward_pass(X), axis=1)


if __name__ == "__main__":
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    iris = load_iris()
    X = (iris.data - iris.data.mean(axis=0)) / iris.data.std(axis=0)
    y_onehot = np.eye(3)[iris.target]
    X_train, X_test, y_train, y_test = train_test_split(X, y_onehot, test_size=0.2, random_state=42)

    mlp = MLP(input_dim=4, hidden_dim=10, output_dim=3)
    mlp.train(X_train, y_train, epochs=1000)
    accuracy = np.mean(mlp.predict(X_test) == np.argmax(y_test, axis=1))
    print(f"Test accuracy: {accuracy:.2f}")
