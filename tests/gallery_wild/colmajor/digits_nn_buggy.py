# Neural network with one hidden layer, written from scratch for the digit recognizer
# Data are stored column-wise: X has shape (n_x, m), Y is one-hot with shape (n_y, m).

import numpy as np

train = np.loadtxt("/home/amine/kaggle/digit-recognizer/train.csv", delimiter=",", skiprows=1)

X_train = train[:, 1:].T / 255.0
labels = train[:, 0].astype(int)
Y_train = np.zeros((10, labels.shape[0]))
Y_train[labels, np.arange(labels.shape[0])] = 1

print("X_train shape: " + str(X_train.shape))
print("Y_train shape: " + str(Y_train.shape))


def layer_sizes(X, Y, n_h=64):
    n_x = X.shape[0]  # size of input layer
    n_y = Y.shape[0]  # size of output layer
    return (n_x, n_h, n_y)


def initializing_parameters(n_x, n_h, n_y):
    w1 = np.random.randn(n_h, n_x) * 0.01
    B1 = np.zeros((n_h, 1))
    w2 = np.random.randn(n_y, n_h) * 0.01
    B2 = np.zeros((n_y, 1))

    assert w1.shape == (n_h, n_x)
    assert B1.shape == (n_h, 1)
    assert w2.shape == (n_y, n_h)
    assert B2.shape == (n_y, 1)

    parameters = {"w1": w1, "B1": B1, "w2": w2, "B2": B2}
    return parameters


def softmax(Z):
    expZ = np.exp(Z - np.max(Z, axis=0, keepdims=True))
    return expZ / np.sum(expZ, axis=0, keepdims=True)


def forward_propagation(X, parameters):
    w1 = parameters["w1"]
    B1 = parameters["B1"]
    w2 = parameters["w2"]
    B2 = parameters["B2"]

    Z1 = np.dot(w1, X) + B1
    A1 = np.tanh(Z1)
    Z2 = np.dot(w2, A1) + B2
    A2 = softmax(Z2)

    cache = {"Z1": Z1, "A1": A1, "Z2": Z2, "A2": A2}
    return A2, cache


def compute_cost(A2, Y, parameters, lambda_regul=0.7):
    m = Y.shape[1]
    w1 = parameters["w1"]
    w2 = parameters["w2"]

    cross_entropy_cost = -np.sum(Y * np.log(A2)) / m
    L2_regularization_cost = lambda_regul / (2 * m) * (np.sum(np.square(w1)) + np.sum(np.square(w2)))
    cost = cross_entropy_cost + L2_regularization_cost
    return cost


def back_propagation(X, Y, parameters, cache, lambda_regul=0.7):
    m = X.shape[1]

    w1 = parameters["w1"]
    w2 = parameters["w2"]
    Z1 = cache["Z1"]
    A1 = cache["A1"]
    A2 = cache["A2"]

    dZ2 = A2 - Y
    dw2 = (1 / m) * np.dot(dZ2, A1.T) + (lambda_regul / m) * w2
    dB2 = (1 / m) * np.sum(dZ2, axis=1, keepdims=True)
    dZ1 = np.dot(w2.T, dZ2) * (1 - np.power(Z1, 2))
    dw1 = (1 / m) * np.dot(dZ1, X.T) + (lambda_regul / m) * w1
    dB1 = (1 / m) * np.sum(dZ1, axis=1, keepdims=True)

    grads = {"dw1": dw1, "dB1": dB1, "dw2": dw2, "dB2": dB2}
    return grads


def update_parameters(parameters, grads, learning_rate=0.5):
    w1 = parameters["w1"] - learning_rate * grads["dw1"]
    B1 = parameters["B1"] - learning_rate * grads["dB1"]
    w2 = parameters["w2"] - learning_rate * grads["dw2"]
    B2 = parameters["B2"] - learning_rate * grads["dB2"]
    return {"w1": w1, "B1": B1, "w2": w2, "B2": B2}


def nn_model(X, Y, n_h, num_iterations=1000, print_cost=False):
    n_x, n_h, n_y = layer_sizes(X, Y, n_h)
    parameters = initializing_parameters(n_x, n_h, n_y)

    for i in range(0, num_iterations):
        A2, cache = forward_propagation(X, parameters)
        cost = compute_cost(A2, Y, parameters)
        grads = back_propagation(X, Y, parameters, cache)
        parameters = update_parameters(parameters, grads)

        if print_cost and i % 100 == 0:
            print("Cost after iteration %i: %f" % (i, cost))

    return parameters


def predict(parameters, X):
    A2, cache = forward_propagation(X, parameters)
    return np.argmax(A2, axis=0)


parameters = nn_model(X_train, Y_train, 64, num_iterations=1000, print_cost=True)
predictions = predict(parameters, X_train)
print("Accuracy: %.2f%%" % (100 * np.mean(predictions == labels)))
