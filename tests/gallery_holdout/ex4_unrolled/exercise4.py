# Programming Exercise 4: Neural Networks Learning (Python version of the course's ex4)
# used for manipulating directory paths
import os

# Scientific and vector computation for python
import numpy as np

# Plotting library
from matplotlib import pyplot

# Optimization module in scipy
from scipy import optimize

# will be used to load MATLAB mat datafile format
from scipy.io import loadmat

# library written for this exercise providing additional functions for assignment submission, and others
import utils

# define the submission/grader object for this exercise
grader = utils.Grader()

# training data stored in arrays X, y
data = loadmat(os.path.join("Data", "ex4data1.mat"))
X, y = data["X"], data["y"].ravel()

# set the zero digit to 0, rather than its mapped 10 in this dataset
y[y == 10] = 0

# Number of training examples
m = y.size

# Randomly select 100 data points to display
rand_indices = np.random.choice(m, 100, replace=False)
sel = X[rand_indices, :]

utils.displayData(sel)

# Setup the parameters you will use for this exercise
input_layer_size = 400  # 20x20 Input Images of Digits
hidden_layer_size = 25  # 25 hidden units
num_labels = 10  # 10 labels, from 0 to 9

# Load the weights into variables Theta1 and Theta2
weights = loadmat(os.path.join("Data", "ex4weights.mat"))

# Theta1 has size 25 x 401
# Theta2 has size 10 x 26
Theta1, Theta2 = weights["Theta1"], weights["Theta2"]

# swap first and last columns of Theta2, due to legacy from MATLAB indexing
Theta2 = np.roll(Theta2, 1, axis=0)

# Unroll parameters
nn_params = np.concatenate([Theta1.ravel(), Theta2.ravel()])


def sigmoidGradient(z):
    """
    Computes the gradient of the sigmoid function evaluated at z.
    """
    g = utils.sigmoid(z) * (1 - utils.sigmoid(z))
    return g


def nnCostFunction(nn_params, input_layer_size, hidden_layer_size, num_labels, X, y, lambda_=0.0):
    """
    Implements the neural network cost function and gradient for a two layer neural
    network which performs classification.

    Parameters
    ----------
    nn_params : array_like
        The parameters for the neural network which are "unrolled" into
        a vector. This needs to be converted back into the weight matrices Theta1
        and Theta2.
    input_layer_size : int
        Number of features for the input layer.
    hidden_layer_size : int
        Number of hidden units in the second layer.
    num_labels : int
        Total number of labels, or equivalently number of output units.
    X : array_like
        Input dataset. A matrix of shape (m x input_layer_size).
    y : array_like
        Dataset labels. A vector of shape (m,).
    lambda_ : float, optional
        Regularization parameter.

    Returns
    -------
    J : float
        The computed value for the cost function at the current weight values.
    grad : array_like
        An "unrolled" vector of the partial derivatives of the concatenatation of
        neural network weights Theta1 and Theta2.
    """
    # Reshape nn_params back into the parameters Theta1 and Theta2, the weight matrices
    # for our 2 layer neural network
    Theta1 = np.reshape(
        nn_params[: hidden_layer_size * (input_layer_size + 1)], (hidden_layer_size, (input_layer_size + 1))
    )

    Theta2 = np.reshape(
        nn_params[(hidden_layer_size * (input_layer_size + 1)) :], (num_labels, (hidden_layer_size + 1))
    )

    # Setup some useful variables
    m = y.size

    # feedforward, with a column of ones for the bias units
    a1 = np.concatenate([np.ones((m, 1)), X], axis=1)
    z2 = a1.dot(Theta1.T)
    a2 = np.concatenate([np.ones((z2.shape[0], 1)), utils.sigmoid(z2)], axis=1)
    z3 = a2.dot(Theta2.T)
    a3 = utils.sigmoid(z3)

    y_matrix = y.reshape(-1)
    y_matrix = np.eye(num_labels)[y_matrix]

    # the bias columns are not regularized
    temp1 = Theta1
    temp2 = Theta2
    reg_term = (lambda_ / (2 * m)) * (np.sum(np.square(temp1[:, 1:])) + np.sum(np.square(temp2[:, 1:])))

    J = (-1 / m) * np.sum((np.log(a3) * y_matrix) + np.log(1 - a3) * (1 - y_matrix)) + reg_term

    # Backpropagation
    delta_3 = a3 - y_matrix
    delta_2 = delta_3.dot(Theta2)[:, 1:] * sigmoidGradient(z2)

    Delta1 = delta_2.T.dot(a1)
    Delta2 = delta_3.T.dot(a2)

    Theta1_grad = (1 / m) * Delta1
    Theta1_grad[:, 1:] = Theta1_grad[:, 1:] + (lambda_ / m) * Theta1[:, 1:]

    Theta2_grad = (1 / m) * Delta2
    Theta2_grad[:, 1:] = Theta2_grad[:, 1:] + (lambda_ / m) * Theta2[:, 1:]

    # Unroll gradients
    grad = np.concatenate([Theta1_grad.ravel(), Theta2_grad.ravel()])

    return J, grad


lambda_ = 0
J, _ = nnCostFunction(nn_params, input_layer_size, hidden_layer_size, num_labels, X, y, lambda_)
print("Cost at parameters (loaded from ex4weights): %.6f " % J)
print("The cost should be about                   : 0.287629.")


def randInitializeWeights(L_in, L_out, epsilon_init=0.12):
    """
    Randomly initialize the weights of a layer in a neural network.

    Returns
    -------
    W : array_like
        The weight initialiatized to random values.  Note that W should
        be set to a matrix of size(L_out, 1 + L_in) as
        the first column of W handles the "bias" terms.
    """
    W = np.random.rand(L_out, 1 + L_in) * 2 * epsilon_init - epsilon_init
    return W


print("Initializing Neural Network Parameters ...")

initial_Theta1 = randInitializeWeights(input_layer_size, hidden_layer_size)
initial_Theta2 = randInitializeWeights(hidden_layer_size, num_labels)

# Unroll parameters
initial_nn_params = np.concatenate([initial_Theta1.ravel(), initial_Theta2.ravel()], axis=0)

utils.checkNNGradients(nnCostFunction)

options = {"maxiter": 100}
lambda_ = 1

# Create "short hand" for the cost function to be minimized
costFunction = lambda p: nnCostFunction(p, input_layer_size, hidden_layer_size, num_labels, X, y, lambda_)

res = optimize.minimize(costFunction, initial_nn_params, jac=True, method="TNC", options=options)

# get the solution of the optimization
nn_params = res.x

# Obtain Theta1 and Theta2 back from nn_params
Theta1 = np.reshape(
    nn_params[: hidden_layer_size * (input_layer_size + 1)], (hidden_layer_size, (input_layer_size + 1))
)
Theta2 = np.reshape(
    nn_params[(hidden_layer_size * (input_layer_size + 1)) :], (num_labels, (hidden_layer_size + 1))
)

pred = utils.predict(Theta1, Theta2, X)
print("Training Set Accuracy: %f" % (np.mean(pred == y) * 100))
