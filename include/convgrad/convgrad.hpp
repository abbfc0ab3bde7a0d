// SPDX-License-Identifier: Apache-2.0
// Everything in one include.
#pragma once

#include "convgrad/command_buffer.hpp"
#include "convgrad/convolution.hpp"
#include "convgrad/convolution_data_source.hpp"
#include "convgrad/convolution_descriptor.hpp"
#include "convgrad/convolution_gradient.hpp"
#include "convgrad/convolution_gradient_state.hpp"
#include "convgrad/convolution_transpose.hpp"
#include "convgrad/device.hpp"
#include "convgrad/device_buffer.hpp"
#include "convgrad/dtype.hpp"
#include "convgrad/errors.hpp"
#include "convgrad/fully_connected.hpp"
#include "convgrad/functional.hpp"
#include "convgrad/gradient_kernel.hpp"
#include "convgrad/image.hpp"
#include "convgrad/optimizer.hpp"
#include "convgrad/padding.hpp"
#include "convgrad/problem.hpp"
#include "convgrad/tensor_view.hpp"
#include "convgrad/weights_and_biases_state.hpp"
