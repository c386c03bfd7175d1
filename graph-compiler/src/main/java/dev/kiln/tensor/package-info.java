/**
 * Tensors: {@link dev.kiln.tensor.Tensor}, a dense n-dimensional array in off-heap memory, and
 * {@link dev.kiln.tensor.DeviceTensor}, one in a GPU's memory, with their element types
 * ({@link dev.kiln.tensor.DType}). Who owns a tensor's memory, and who frees it, is in each class's
 * Javadoc.
 */
package dev.kiln.tensor;
